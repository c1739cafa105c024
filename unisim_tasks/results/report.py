"""The paper's Tables 6 and 8 from runs: per-dataset scores, task means and the core / OOD average.

Only the leaf scores of a results file are used; every task mean and average is recomputed from
them (unweighted, as the paper: a task's mean over its datasets, the average over the task means;
"-" wherever a number it depends on does not apply). For IQA and PAA an encoder that measured both
quality modes (``acc_naive`` and ``acc_clipiqa``) is scored, per the paper's App. C, in the mode with
the better mean over the task's datasets, that mode being used for every dataset of the task.
Scores are in % (IR: mAP in %). The paper's own rows, with ``paper=True``, are shown as printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .paper import GROUPS, LAYOUTS, Layout, paper_rows
from .runs import DatasetResult, ResultsError, Run

QUALITY_TASKS = ("iqa", "paa")
QUALITY_METRICS = {"naive": "acc_naive", "clip-iqa": "acc_clipiqa"}  # in tie-break order


@dataclass(frozen=True)
class Row:
    """One model's row: values by column key (see ``Layout.columns``) in %, None where n/a."""

    label: str
    source: str  # "run" or "paper"
    section: str  # the heading the row is listed under
    values: dict[str, float | None]
    lmm: bool = False  # (paper rows) LMM-based
    # encoders on IQA / PAA: task -> {mode: task mean in %}; the chosen mode is ``modes[task]``
    mode_means: dict[str, dict[str, float]] = field(default_factory=dict)
    run: Run | None = None

    @property
    def modes(self) -> dict[str, str]:
        """The quality mode each IQA / PAA task was scored in (the better one, App. C)."""
        return {task: _better(means) for task, means in self.mode_means.items()}


@dataclass(frozen=True)
class Table:
    layout: Layout
    mini: bool  # the runs' mini sets: synthetic data, not comparable with the paper
    rows: list[Row]
    notes: list[str]


def tables(runs: list[Run], which: tuple[str, ...] = ("core", "ood"), paper: bool = False) -> list[Table]:
    """The tables ``which`` ("core": Table 6, "ood": Table 8) for ``runs``: one of the real runs (with
    the paper's rows if ``paper``) and one of the mini runs, each where it has rows. A run with none of
    a table's tasks is left out of it (with a note); one with some but not all raises ``ResultsError``."""
    out = []
    for name in which:
        layout = LAYOUTS[name]
        for mini in (False, True):
            notes, rows = [], []
            for run in (r for r in runs if r.mini == mini):
                if len(run.missing(layout.eval_sets)) == len(layout.eval_sets):
                    notes.append(f"{run.name} ({run.results_file}): no {layout.title} in its results")
                    continue
                rows.append(run_row(run, layout, _section(mini)))
                if run.limit is not None:
                    notes.append(f"{run.name}: run with --limit {run.limit}, not on the whole evaluation sets")
            _disambiguate(rows)
            if paper and not mini:
                rows += _paper_rows(layout)
            if rows:
                out.append(Table(layout, mini, rows, notes))
    if not out:
        raise ResultsError(f"no run has results for the {' or '.join(LAYOUTS[n].title for n in which)}")
    return out


def run_row(run: Run, layout: Layout, section: str = "Runs") -> Row:
    """``run``'s row of ``layout``; ``ResultsError`` if it lacks some of the table's tasks."""
    run.require(layout.eval_sets)
    values, mode_means = {}, {}
    for task in layout.tasks:
        results = [run.datasets[e] for e, _ in task.datasets]
        metric = "score"
        if task.task in QUALITY_TASKS:
            means = _mode_means(results)
            if means:
                mode_means[task.task] = means
                metric = QUALITY_METRICS[_better(means)]
        for result in results:
            values[result.eval_set] = _percent(result.metrics.get(metric, math.nan))
        values[task.mean] = _mean([values[e] for e, _ in task.datasets])
    values[layout.average] = _mean([values[t.mean] for t in layout.tasks])
    return Row(run.name, "run", section, values, mode_means=mode_means, run=run)


def _mode_means(results: list[DatasetResult]) -> dict[str, float]:
    """Task mean (%) of each quality mode measured on every dataset of the task."""
    means = {}
    for mode, metric in QUALITY_METRICS.items():
        scores = [_percent(r.metrics.get(metric, math.nan)) for r in results]
        if None not in scores:
            means[mode] = sum(scores) / len(scores)
    return means


def _better(means: dict[str, float]) -> str:
    return max(means, key=means.get)  # the first listed on a tie (naive)


def _percent(value: float) -> float | None:
    return None if math.isnan(value) else 100 * value


def _mean(values: list[float | None]) -> float | None:
    return None if None in values else sum(values) / len(values)


def _section(mini: bool) -> str:
    return "Runs on the mini sets (synthetic data, not comparable with the paper)" if mini else "Runs"


def _disambiguate(rows: list[Row]) -> None:
    """Runs of one model name are told apart by their date."""
    names = [r.label for r in rows]
    for i, row in enumerate(rows):
        if names.count(row.label) > 1:
            rows[i] = replace(row, label=f"{row.label} ({row.run.date})")


def _paper_rows(layout: Layout) -> list[Row]:
    return [
        Row(r.name, "paper", f"Paper, Table {layout.number}: {GROUPS[r.group]}", r.values, lmm=r.lmm)
        for r in paper_rows(layout.name)
    ]
