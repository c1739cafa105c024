"""The leaderboard page: a store's submissions beside the paper's rows, as files for a static site.

``build`` writes into one folder:

- ``index.html``: one self-contained page (data, styles and script inline; nothing is fetched when it
  is viewed) with the Table 6 / Table 8 columns, sortable by any column and filterable by task
  group, encoder vs LMM, paper vs submitted and model name. Submissions are grouped into sections
  by protocol (``protocol.version`` and the tasks' versions and generation settings) and data
  (``data.version``): the main section, which also holds the paper's rows, is the current
  ``PROTOCOL_VERSION`` with the data most submissions share; each other section says what differs.
- ``leaderboard.csv``, ``leaderboard.tex``, ``leaderboard.md``: the main section's tables, written by
  ``render`` (the report's formats).
- ``fig3_general.svg``, ``fig3_specialized.svg``: the paper's Fig. 3, Kendall's tau between the task
  means across the main section's models of each group (the paper's rows and the submissions on
  real data); ``fig4_nafc.svg``: Fig. 4, accuracy against the number of alternatives from the
  submissions' N-alternative results. The figures are also inline in the page.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path

from . import figures
from .paper import LAYOUTS, paper_rows
from .protocol import BENCHMARK_SETS, NAFC_SETS, PROTOCOL_VERSION
from .render import render
from .report import Row, Table, run_row, tables
from .runs import DatasetResult, Run
from .submission import IDENTITY_KEYS, digest

FIG3_TASKS = [t for name in ("core", "ood") for t in LAYOUTS[name].tasks]
FIG3_GROUPS = {"general": "general-purpose models", "specialized": "specialized models"}
NAFC_HOWTO = (
    "No N-alternative results yet: unisim-bench prepare --dataset hpdv2 --raw-dir DIR --num-alternatives N, "
    "then evaluate unisim_it2afc_hpdv2_nafc"
)


@dataclass
class Section:
    """Submissions ranked together: one protocol and one data version."""

    key: tuple
    entries: list[tuple[str, dict]] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)

    @property
    def mini(self) -> bool:
        return any(sub["data"]["mini"] for _, sub in self.entries)


def _section_key(submission: dict) -> tuple:
    tasks = submission["protocol"]["tasks"]
    return (
        submission["protocol"]["version"],
        digest({e: tasks[e] for e in BENCHMARK_SETS if e in tasks}),
        submission["data"]["version"],
    )


def sections(entries: list[tuple[str, dict]]) -> list[Section]:
    """The benchmark submissions of ``entries`` by section, the main one first (possibly empty)."""
    by_key: dict[tuple, Section] = {}
    for path, sub in entries:
        if any(e in sub["scores"] for e in BENCHMARK_SETS):
            by_key.setdefault(_section_key(sub), Section(_section_key(sub))).entries.append((path, sub))
    current = [s for s in by_key.values() if s.key[0] == PROTOCOL_VERSION]
    latest = {k: max(sub["provenance"]["submitted"] for _, sub in s.entries) for k, s in by_key.items()}
    main = max(current, key=lambda s: (len(s.entries), not s.mini, latest[s.key]), default=Section(()))
    others = sorted((s for s in by_key.values() if s is not main), key=lambda s: latest[s.key], reverse=True)
    for section in others:
        section.differs = _differences(section.entries[0][1], main.entries[0][1] if main.entries else None)
    return [main, *others]


def _differences(sub: dict, reference: dict | None) -> list[str]:
    """What sets ``sub``'s section apart from the main section's ``reference`` submission."""
    found = []
    if sub["protocol"]["version"] != PROTOCOL_VERSION:
        found.append(f"protocol version {sub['protocol']['version']} (this page ranks version {PROTOCOL_VERSION})")
    if reference is None:
        return found or ["no submission of the current protocol to compare with"]
    tasks, ref_tasks = sub["protocol"]["tasks"], reference["protocol"]["tasks"]
    changed = [e for e in BENCHMARK_SETS if e in tasks and tasks[e] != ref_tasks.get(e)]
    if changed:
        found.append(f"task versions or generation settings differ on {', '.join(changed)}")
    if sub["data"]["mini"] != reference["data"]["mini"]:
        found.append(
            "the synthetic mini sets" if sub["data"]["mini"] else "the real sets (the main section is on mini sets)"
        )
    elif sub["data"]["version"] != reference["data"]["version"]:
        sets, ref_sets = sub["data"]["sets"], reference["data"]["sets"]
        differing = []
        for e in BENCHMARK_SETS:
            if e in sets and e in ref_sets and sets[e]["content_sha256"] != ref_sets[e]["content_sha256"]:
                keys = [
                    f"{k} {sets[e].get(k)} not {ref_sets[e].get(k)}"
                    for k in IDENTITY_KEYS
                    if sets[e].get(k) != ref_sets[e].get(k)
                ]
                differing.append(f"{e} ({', '.join(keys) or 'same inputs, other content'})")
        found.append(f"other data (data version {sub['data']['version'][:12]}): {'; '.join(differing)}")
    return found


def as_run(path: str, submission: dict) -> Run:
    """A submission as the ``Run`` the report reads (scores back to fractions, NaN where n/a)."""
    model = submission["model"]
    datasets = {
        e: DatasetResult(
            eval_set=e,
            task=s["task"],
            metrics={k: math.nan if v is None else v for k, v in s["metrics"].items()},
            n_samples=s["n_samples"],
            samples_file=None,
        )
        for e, s in submission["scores"].items()
    }
    args = ",".join(f"{k}={v}" for k, v in model["model_args"].items())
    return Run(
        name=model["name"], model=model["lmms_eval_model"], model_args=args, mini=submission["data"]["mini"],
        results_file=Path(path), date=submission["provenance"]["run_date"], limit=submission["protocol"]["limit"],
        datasets=datasets, config={},
    )  # fmt: skip


def _submitted_rows(section: Section, layout_name: str, title: str) -> list[Row]:
    layout = LAYOUTS[layout_name]
    return [
        replace(run_row(as_run(path, sub), layout, title), lmm=sub["model"]["kind"] == "lmm")
        for path, sub in section.entries
    ]


def _page_rows(section: Section, title: str) -> list[dict]:
    """The page's rows of a section's submissions: values of both tables merged."""
    out = []
    core, ood = (_submitted_rows(section, name, title) for name in ("core", "ood"))
    for (path, sub), a, b in zip(section.entries, core, ood):
        modes = {}
        for row in (a, b):
            for task, mode in row.modes.items():
                columns = next(t for n in LAYOUTS for t in LAYOUTS[n].tasks if t.task == task)
                modes.update({key: mode for key, _ in columns.datasets} | {columns.mean: mode})
        model, who = sub["model"], sub["provenance"]
        args = ",".join(f"{k}={v}" for k, v in model["model_args"].items())
        out.append({
            "label": model["name"], "source": "submitted", "group": model["group"], "kind": model["kind"],
            "values": {**a.values, **b.values}, "modes": modes,
            "detail": f"lmms-eval --model {model['lmms_eval_model']}{' --model_args ' + args if args else ''}; "
                      f"submitted by {who['submitter']} on {who['submitted']}; {path}",
        })  # fmt: skip
    return out


def _paper_page_rows() -> list[dict]:
    merged: dict[str, dict] = {}
    for name in ("core", "ood"):
        for r in paper_rows(name):
            row = merged.setdefault(r.model_id, {
                "label": r.name, "source": "paper", "group": r.group, "kind": "lmm" if r.lmm else "encoder",
                "values": {}, "modes": {}, "detail": f"the paper's {r.paper_label}",
            })  # fmt: skip
            row["values"].update(r.values)
    return list(merged.values())


def _layouts() -> list[dict]:
    return [
        {
            "name": layout.name,
            "title": f"{layout.title} (Table {layout.number})",
            "average": layout.average,
            "average_label": f"{layout.name.upper() if layout.name == 'ood' else layout.name.capitalize()} average",
            "tasks": [
                {"task": t.task, "label": t.label, "mean": t.mean, "datasets": list(t.datasets)} for t in layout.tasks
            ],
        }
        for layout in LAYOUTS.values()
    ]


def _file_tables(main: Section) -> list[Table]:
    """The main section's tables for the CSV / LaTeX / Markdown files: beside the paper's rows, or
    apart from them when the section is on the mini sets (as the report keeps them)."""
    out = []
    for name in ("core", "ood"):
        (paper,) = tables([], (name,), paper=True)
        runs = _submitted_rows(main, name, "Submissions")
        if main.mini:
            out += [paper, Table(LAYOUTS[name], True, runs, [])] if runs else [paper]
        else:
            out.append(Table(LAYOUTS[name], False, runs + paper.rows, []))
    return out


def fig3(rows: list[dict]) -> dict[str, str]:
    """Fig. 3 (a, b): Kendall's tau between task means across the models of each group."""
    out = {}
    labels = [t.label for t in FIG3_TASKS]
    for letter, (group, what) in zip("ab", FIG3_GROUPS.items()):
        members = [{t.task: r["values"].get(t.mean) for t in FIG3_TASKS} for r in rows if r["group"] == group]
        counts = {s: sum(r["group"] == group and r["source"] == s for r in rows) for s in ("paper", "submitted")}
        note = (
            f"over {len(members)} models ({counts['paper']} paper, {counts['submitted']} submitted); "
            f"n/a: fewer than {figures.MIN_MODELS} with both scores"
        )
        matrix = figures.tau_matrix(members, [t.task for t in FIG3_TASKS])
        out[group] = figures.heatmap(f"Fig. 3{letter}: Kendall's \u03c4 between tasks, {what}", labels, matrix, note)
    return out


def fig4(entries: list[tuple[str, dict]]) -> str:
    """Fig. 4: accuracy against N from the current protocol's N-alternative results, by model."""
    series: dict[str, list[tuple[int, float]]] = {}
    for _, sub in entries:
        if sub["protocol"]["version"] != PROTOCOL_VERSION:
            continue
        for eval_set in NAFC_SETS:
            score = sub["scores"].get(eval_set, {}).get("metrics", {}).get("score")
            if score is not None:
                n = sub["data"]["sets"][eval_set]["num_alternatives"]
                label = sub["model"]["name"] + (" (mini)" if sub["data"]["mini"] else "")
                series.setdefault(label, []).append((n, score))
    return figures.nafc_chart("Fig. 4: IT-NAFC (HPDv2) accuracy against the number of alternatives", series, NAFC_HOWTO)


def _section_title(section: Section, main: bool) -> tuple[str, list[str]]:
    if not section.entries:
        return "Leaderboard", ["No submission of the current protocol yet: the paper's rows alone."]
    sub = section.entries[0][1]
    data = f"data version {sub['data']['version'][:12]}, protocol version {sub['protocol']['version']}"
    if main:
        notes = [f"{_count(section.entries)} on {data}, beside the paper's rows."]
        if section.mini:
            notes.append("These submissions are on the synthetic mini sets: not comparable with the paper's numbers.")
        return "Leaderboard", notes
    return "Not ranked with the above: other protocol or data", [f"{_count(section.entries)} on {data}:"]


def _count(entries: list) -> str:
    return f"{len(entries)} submission{'s' if len(entries) != 1 else ''}"


def build(entries: list[tuple[str, dict]], out: Path, source: str) -> list[Path]:
    """Write the page and its files for the store ``entries`` (path, submission) into ``out``;
    ``source`` names the store on the page. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    parts = sections(entries)
    page_sections = []
    for i, section in enumerate(parts):
        title, notes = _section_title(section, i == 0)
        rows = _page_rows(section, title) + (_paper_page_rows() if i == 0 else [])
        page_sections.append(
            {
                "id": "main" if i == 0 else f"other-{i}",
                "main": i == 0,
                "title": title,
                "notes": notes,
                "differs": section.differs,
                "rows": rows,
            }
        )
    real_main = [r for r in page_sections[0]["rows"] if r["source"] == "paper" or not parts[0].mini]
    svgs = {f"fig3_{group}.svg": svg for group, svg in fig3(real_main).items()}
    svgs["fig4_nafc.svg"] = fig4(entries)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = {
        "meta": f"{_count(entries)} from {source}; built {when}; protocol version {PROTOCOL_VERSION}.",
        "layouts": _layouts(),
        "sections": page_sections,
    }
    inline = "".join(f'<figure id="{name[:-4]}">{svg}</figure>' for name, svg in svgs.items())
    template = files(__package__).joinpath("page_template.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    fill = {"DATA": payload, "FIGURES": inline}
    written = {"index.html": re.sub(r"__(DATA|FIGURES)__", lambda m: fill[m.group(1)], template)}
    file_tables = _file_tables(parts[0])
    written |= {
        f"leaderboard.{ext}": render(file_tables, fmt)
        for ext, fmt in (("csv", "csv"), ("tex", "latex"), ("md", "markdown"))
    }
    written |= svgs
    for name, text in written.items():
        (out / name).write_text(text, encoding="utf-8")
    return [out / name for name in written]


def publish(site: Path, space: str, api=None) -> str:
    """Upload the folder ``site`` as the static Hugging Face Space ``space`` (ORG/NAME), created if
    missing; returns the Space's address. ``api``: an ``HfApi`` (one with the usual token if None)."""
    if not (site / "index.html").is_file():
        raise FileNotFoundError(
            f"{site} holds no index.html: write it with `unisim-bench leaderboard build --out {site}`"
        )
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(space, repo_type="space", space_sdk="static", exist_ok=True)
    api.upload_folder(
        folder_path=str(site), repo_id=space, repo_type="space", commit_message="Update the UniSim-Bench leaderboard"
    )
    return f"https://huggingface.co/spaces/{space}"
