"""Writing ``report.Table``s out: aligned text, Markdown, LaTeX (booktabs, the paper's style), CSV, JSON.

Every format shows a score as the paper does, in % with one decimal ("-" where it does not apply);
Markdown and LaTeX set the best value of each column in bold (ties: all of them). CSV and JSON use
the column keys of ``paper.Layout.columns``, the same as the shipped paper tables.
"""

from __future__ import annotations

import csv
import io
import json

from .report import QUALITY_TASKS, Row, Table

FORMATS = ("text", "markdown", "latex", "csv", "json")
LMM_MARK = "\u2663"  # the paper's club


def render(tables: list[Table], fmt: str) -> str:
    """``tables`` in format ``fmt`` (one of ``FORMATS``)."""
    if fmt == "csv":
        return _csv(tables)
    if fmt == "json":
        return json.dumps([_json(t) for t in tables], indent=1, ensure_ascii=False) + "\n"
    write = {"text": _text, "markdown": _markdown, "latex": _latex}[fmt]
    return "\n".join(write(t) for t in tables)


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _title(table: Table) -> str:
    layout = table.layout
    what = "mini sets: synthetic data, not comparable with the paper" if table.mini else "UniSim-Bench"
    return f"{layout.title} (layout of the paper's Table {layout.number}; accuracy, IR mAP, in %), {what}"


def _headers(table: Table) -> list[tuple[str, list[str]]]:
    """(span label, column headers) for each task, then the average."""
    return [(t.label, [h for _, h in t.datasets] + ["average"]) for t in table.layout.tasks] + [("Avg", [""])]


def _best(table: Table) -> dict[str, str]:
    """Column key -> the best value as shown."""
    best = {}
    for key in table.layout.columns:
        shown = [float(cell(r.values[key])) for r in table.rows if r.values[key] is not None]
        if shown:
            best[key] = cell(max(shown))
    return best


def _sections(table: Table) -> list[tuple[str, list[Row]]]:
    out: list[tuple[str, list[Row]]] = []
    for row in table.rows:
        if not out or out[-1][0] != row.section:
            out.append((row.section, []))
        out[-1][1].append(row)
    return out


def _mode_notes(table: Table) -> list[str]:
    notes = []
    for row in table.rows:
        parts = []
        for task, means in row.mode_means.items():
            label = next(t.label for t in table.layout.tasks if t.task == task)
            measured = ", ".join(f"{m} {cell(v)}" for m, v in means.items())
            only = " only" if len(means) == 1 else ""
            parts.append(f"{label} {row.modes[task]} (measured{only}: {measured})")
        if parts:
            notes.append(f"{row.label}: quality mode, the better per task (paper, App. C): {'; '.join(parts)}")
    return notes


def _label(row: Row) -> str:
    return row.label + (" " + LMM_MARK if row.lmm else "")


# -- text ------------------------------------------------------------------------------------------
def _text(table: Table) -> str:
    keys = table.layout.columns
    heads = [h for _, hs in _headers(table) for h in hs]
    widths = [max(len(h), 5) for h in heads]
    first = max([len("Model")] + [len(_label(r)) for r in table.rows])
    spans, i = [], 0
    for label, hs in _headers(table):
        width = sum(widths[i : i + len(hs)]) + len(hs) - 1
        spans.append(label.center(width, "-") if len(hs) > 1 else label.rjust(width))
        i += len(hs)
    lines = [_title(table), " ".join([" " * first, *spans])]
    lines.append(" ".join(["Model".ljust(first), *(h.rjust(w) for h, w in zip(heads, widths))]).rstrip())
    for section, rows in _sections(table):
        lines.append(f"-- {section}")
        for row in rows:
            values = (cell(row.values[k]).rjust(w) for k, w in zip(keys, widths))
            lines.append(" ".join([_label(row).ljust(first), *values]))
    lines += _mode_notes(table) + table.notes
    for row in (r for r in table.rows if r.run is not None):
        args = f" --model_args {row.run.model_args}" if row.run.model_args else ""
        lines.append(f"{row.label}: lmms-eval --model {row.run.model}{args} ({row.run.results_file})")
    return "\n".join(lines) + "\n"


# -- Markdown --------------------------------------------------------------------------------------
def _markdown(table: Table) -> str:
    best = _best(table)
    keys = table.layout.columns
    spans = [label if j == 0 else "" for label, hs in _headers(table) for j in range(len(hs))]
    heads = [h for _, hs in _headers(table) for h in hs]
    lines = [f"**{_title(table)}**", "", _md_row(["Model", *spans]), "|---|" + "---:|" * len(keys)]
    lines.append(_md_row(["", *(f"*{h}*" if h else "" for h in heads)]))
    for section, rows in _sections(table):
        lines.append(_md_row([f"*{section}*", *[""] * len(keys)]))
        for row in rows:
            values = [_bold_md(row.values[k], best.get(k)) for k in keys]
            lines.append(_md_row([_md_escape(_label(row)), *values]))
    notes = _mode_notes(table) + table.notes
    if notes:
        lines += [""] + [f"- {_md_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def _md_row(cells: list[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _bold_md(value: float | None, best: str | None) -> str:
    shown = cell(value)
    return f"**{shown}**" if shown == best else shown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


# -- LaTeX -----------------------------------------------------------------------------------------
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(c, c) for c in text)


def _latex(table: Table) -> str:
    best = _best(table)
    keys = table.layout.columns
    headers = _headers(table)
    ncols = len(keys) + 1
    spec = "l" + "".join(" " + "c" * len(hs) for _, hs in headers)
    lines = [f"% {_title(table)}; needs \\usepackage{{booktabs}}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule"]
    spans, rules, col = [], [], 2
    for label, hs in headers:
        if len(hs) > 1:
            spans.append(f"\\multicolumn{{{len(hs)}}}{{c}}{{{_tex(label)}}}")
            rules.append(f"\\cmidrule(lr){{{col}-{col + len(hs) - 1}}}")
        else:
            spans.append(_tex(label))
        col += len(hs)
    lines.append("Models & " + " & ".join(spans) + r" \\")
    lines.append(" ".join(rules))
    lines.append((" & " + " & ".join(_tex(h) for _, hs in headers for h in hs)).rstrip() + r" \\")
    for section, rows in _sections(table):
        lines.append(r"\midrule")
        lines.append(f"\\multicolumn{{{ncols}}}{{l}}{{\\textit{{{_tex(section)}}}}} \\\\")
        for row in rows:
            values = []
            for k in keys:
                shown = cell(row.values[k])
                values.append(f"\\textbf{{{shown}}}" if shown == best.get(k) else shown)
            label = _tex(row.label) + (r"$^{\clubsuit}$" if row.lmm else "")
            lines.append(f"{label} & " + " & ".join(values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {n}" for n in _mode_notes(table) + table.notes]
    return "\n".join(lines) + "\n"


# -- CSV and JSON ----------------------------------------------------------------------------------
def _csv(tables: list[Table]) -> str:
    columns = list(dict.fromkeys(k for t in tables for k in t.layout.columns))
    quality = [t for t in QUALITY_TASKS if any(t in (x.task for x in tb.layout.tasks) for tb in tables)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "mini", "source", "section", "model", "lmm", *columns, *(f"{t}_mode" for t in quality)])
    for table in tables:
        for row in table.rows:
            values = [cell(row.values[k]) if k in row.values and row.values[k] is not None else "" for k in columns]
            modes = [row.modes.get(t, "") for t in quality]
            writer.writerow([table.layout.name, str(table.mini).lower(), row.source, row.section, row.label,
                             str(row.lmm).lower(), *values, *modes])  # fmt: skip
    return out.getvalue()


def _json(table: Table) -> dict:
    layout = table.layout
    columns = [
        {"key": e, "label": h, "task": t.task} for t in layout.tasks for e, h in t.datasets + ((t.mean, "average"),)
    ]
    rows = []
    for row in table.rows:
        entry = {
            "model": row.label,
            "source": row.source,
            "section": row.section,
            "lmm": row.lmm,
            "values": {k: None if v is None else float(cell(v)) for k, v in row.values.items()},
            "quality_modes": {
                t: {"mode": row.modes[t], "task_means": {m: float(cell(v)) for m, v in means.items()}}
                for t, means in row.mode_means.items()
            },
        }
        if row.run is not None:
            entry |= {"results_file": str(row.run.results_file), "lmms_eval_model": row.run.model,
                      "model_args": row.run.model_args}  # fmt: skip
        rows.append(entry)
    return {
        "table": layout.name,
        "paper_table": layout.number,
        "title": layout.title,
        "mini": table.mini,
        "columns": columns + [{"key": layout.average, "label": "Avg", "task": None}],
        "rows": rows,
        "notes": _mode_notes(table) + table.notes,
    }
