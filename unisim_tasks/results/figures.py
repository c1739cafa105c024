"""The paper's figures as standalone SVG text (no plotting library): Fig. 3, Kendall's tau between
task scores across models (``tau_matrix`` + ``heatmap``), and Fig. 4, accuracy against the number of
alternatives (``nafc_chart``)."""

from __future__ import annotations

import math
from html import escape

from scipy.stats import kendalltau

FONT = "font-family:system-ui,sans-serif"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MIN_MODELS = 3  # fewer models with both scores give no tau
CHANCE_STROKE = 'stroke="#888" stroke-dasharray="4 3"'


def tau_matrix(rows: list[dict[str, float | None]], tasks: list[str]) -> list[list[float | None]]:
    """Kendall's tau between each pair of ``tasks`` over the ``rows`` (one per model) that have both
    scores; None where fewer than ``MIN_MODELS`` do or a task's scores are all equal."""
    matrix = []
    for a in tasks:
        line = []
        for b in tasks:
            pairs = [(r[a], r[b]) for r in rows if _number(r.get(a)) and _number(r.get(b))]
            tau = kendalltau(*zip(*pairs)).statistic if len(pairs) >= MIN_MODELS else math.nan
            line.append(None if math.isnan(tau) else float(tau))
        matrix.append(line)
    return matrix


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def _svg(width: int, height: int, title: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="figure {css_class}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" style="{FONT}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _colour(tau: float) -> str:
    """White at 0, red towards +1, blue towards -1."""
    t = max(-1.0, min(1.0, tau))
    r, g, b = (214, 39, 40) if t > 0 else (31, 119, 180)
    mix = abs(t)
    return "#" + "".join(f"{round(255 + (c - 255) * mix):02x}" for c in (r, g, b))


def heatmap(title: str, labels: list[str], matrix: list[list[float | None]], note: str = "") -> str:
    """A square map of ``matrix`` (values in [-1, 1], None shown grey as n/a) with its labels."""
    cell, left, top = 52, 92, 96
    size = cell * len(labels)
    width, height = left + size + 70, top + size + (40 if note else 20)
    body = []
    for i, label in enumerate(labels):
        y = top + i * cell + cell / 2
        body.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" font-size="12">{escape(label)}</text>')
        x = left + i * cell + cell / 2
        body.append(
            f'<text x="{x}" y="{top - 8}" text-anchor="start" font-size="12" '
            f'transform="rotate(-45 {x} {top - 8})">{escape(label)}</text>'
        )
    for i, line in enumerate(matrix):
        for j, tau in enumerate(line):
            x, y = left + j * cell, top + i * cell
            fill = "#e0e0e0" if tau is None else _colour(tau)
            text = "n/a" if tau is None else f"{tau:.2f}"
            shade = "#fff" if tau is not None and abs(tau) > 0.6 else "#222"
            body.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff">'
                f"<title>{escape(labels[i])} / {escape(labels[j])}: {text}</title></rect>"
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="11" '
                f'fill="{shade}">{text}</text>'
            )
    bar_x = left + size + 16
    for k in range(21):  # the colour scale, +1 at the top
        t = 1 - k / 10
        body.append(
            f'<rect x="{bar_x}" y="{top + k * size / 21}" width="14" height="{size / 21 + 0.5}" fill="{_colour(t)}"/>'
        )
    for value, frac in (("1", 0), ("0", 0.5), ("-1", 1)):
        body.append(f'<text x="{bar_x + 18}" y="{top + frac * size + 4}" font-size="11">{value}</text>')
    if note:
        body.append(f'<text x="{left}" y="{height - 12}" font-size="11" fill="#555">{escape(note)}</text>')
    return _svg(width, height, title, body, "heatmap")


def nafc_chart(title: str, series: dict[str, list[tuple[int, float]]], empty_note: str) -> str:
    """Accuracy (y, %) against the number of alternatives N (x), one line per model, and chance
    (1/N) dashed; ``empty_note`` in place of the plot when there is no series."""
    width, height, left, right, top, bottom = 560, 340, 56, 180, 34, 44
    if not series:
        note = (
            f'<text x="{width / 2}" y="64" text-anchor="middle" font-size="13" fill="#555">{escape(empty_note)}</text>'
        )
        return _svg(width, 100, title, [note], "nafc empty")
    ns = sorted({n for points in series.values() for n, _ in points})
    lo, hi = min(ns), max(ns)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(n):
        return left + (plot_w / 2 if hi == lo else (n - lo) / (hi - lo) * plot_w)

    def y(acc):
        return top + (1 - acc) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for pct in range(0, 101, 25):
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(pct / 100)}" y2="{y(pct / 100)}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(pct / 100) + 4}" text-anchor="end" font-size="11">{pct}</text>'
        )
    for n in ns:
        body.append(f'<text x="{x(n)}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11">{n}</text>')
    body.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" font-size="12">'
        "number of alternatives N</text>"
    )
    body.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">accuracy (%)</text>'
    )
    chance = " ".join(f"{x(n)},{y(1 / n)}" for n in ns)
    body.append(f'<polyline points="{chance}" fill="none" {CHANCE_STROKE}/>')
    for k, (name, points) in enumerate(sorted(series.items())):
        colour = PALETTE[k % len(PALETTE)]
        points = sorted(points)
        body.append(
            f'<polyline class="series" points="{" ".join(f"{x(n)},{y(a)}" for n, a in points)}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        for n, a in points:
            body.append(
                f'<circle cx="{x(n)}" cy="{y(a)}" r="3.5" fill="{colour}"><title>{escape(name)}, N={n}: '
                f"{100 * a:.1f}%</title></circle>"
            )
        body.append(_legend(left + plot_w + 12, top + 14 + 18 * k, name[:24], f'stroke="{colour}" stroke-width="2"'))
    body.append(_legend(left + plot_w + 12, top + 14 + 18 * len(series), "chance (1/N)", CHANCE_STROKE))
    return _svg(width, height, title, body, "nafc")


def _legend(x: float, y: float, label: str, stroke: str) -> str:
    """A legend entry: a short line drawn with ``stroke``, then ``label``."""
    return (
        f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" {stroke}/>'
        f'<text x="{x + 22}" y="{y}" font-size="11">{escape(label)}</text>'
    )
