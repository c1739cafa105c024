"""Reading lmms-eval 0.7.3 result folders: one ``Run`` per model and date, with its per-dataset scores.

``lmms-eval --output_path R --log_samples`` writes ``R/<model>/<date>_results.json`` (or
``R/<date>_results.json`` when ``--model_args`` names no model) and, next to it, one
``<date>_samples_<task>.jsonl`` per leaf task. ``read_runs`` finds every results file under the paths
it is given, keeps the UniSim-Bench leaf tasks (``unisim_<eval set>`` and ``unisim_mini_<eval set>``),
and checks each samples file against the results' sample counts. Only the leaf entries are read: the
group entries (task means, core / OOD averages) are left to the report to recompute.

A results file holding both real and mini tasks gives two ``Run`` objects, one of each, so that
numbers on the synthetic mini data are never mixed with real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_SUFFIX = "_results.json"
MINI_PREFIX = "unisim_mini_"
PREFIX = "unisim_"
FAILED_RUN = (
    "lmms-eval writes its results only when the evaluation succeeds, yet exits with status 0 when it fails: "
    "the error is in that run's log (its stderr)"
)


class ResultsError(Exception):
    """A results folder or file the report cannot use; the message says why."""


@dataclass(frozen=True)
class DatasetResult:
    """One leaf task of a run."""

    eval_set: str  # e.g. "iqa_pipal" (see unisim_tasks.data.EVAL_SETS)
    task: str  # the lmms-eval task, e.g. "unisim_iqa_pipal" or "unisim_mini_iqa_pipal"
    metrics: dict[str, float]  # "acc", "score", "unparsed", ... as fractions; NaN where it does not apply
    n_samples: int  # the number of samples scored (lmms-eval's n-samples "effective")
    samples_file: Path | None  # the --log_samples file, None when the run logged none


@dataclass(frozen=True)
class Run:
    """One model's evaluation, as one lmms-eval results file records it."""

    name: str  # lmms-eval's model name from --model_args (e.g. a checkpoint), else the --model name
    model: str  # the lmms-eval --model
    model_args: str  # the --model_args string
    mini: bool  # scored on the bundled synthetic mini sets (unisim_mini_* tasks)
    results_file: Path
    date: str  # lmms-eval's date id, the results file's name prefix
    limit: float | None  # lmms-eval --limit: not the whole sets when set
    datasets: dict[str, DatasetResult]  # by evaluation set, in the order of the results file
    config: dict = field(repr=False)  # lmms-eval's "config" entry (batch size, gen_kwargs, seeds, ...)

    def missing(self, eval_sets: Iterable[str]) -> list[str]:
        """The lmms-eval tasks of ``eval_sets`` that this run has no result for."""
        prefix = MINI_PREFIX if self.mini else PREFIX
        return [prefix + e for e in eval_sets if e not in self.datasets]

    def require(self, eval_sets: Iterable[str]) -> None:
        """Raise ``ResultsError`` naming the tasks of ``eval_sets`` missing from this run."""
        missing = self.missing(eval_sets)
        if missing:
            raise ResultsError(f"{self.results_file}: no results for {', '.join(missing)}")


def read_runs(paths: str | Path | Iterable[str | Path]) -> list[Run]:
    """The runs of every ``*_results.json`` under ``paths`` (folders searched recursively, or results
    files), sorted by file. Raises ``ResultsError`` for a path with no results file, an unreadable
    results file, one with no UniSim-Bench task, or a samples file that does not match its results."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs = []
    for path in map(Path, paths):
        for results_file in _results_files(path):
            runs.extend(_read_file(results_file))
    return runs


def _results_files(path: Path) -> list[Path]:
    if path.is_file():
        if not path.name.endswith(RESULTS_SUFFIX):
            raise ResultsError(f"{path} is not an lmms-eval results file (*{RESULTS_SUFFIX})")
        return [path]
    if not path.is_dir():
        raise ResultsError(f"{path} does not exist; if it is an lmms-eval --output_path: {FAILED_RUN}")
    files = sorted(path.rglob(f"*{RESULTS_SUFFIX}"))
    if not files:
        raise ResultsError(f"no lmms-eval results file (*{RESULTS_SUFFIX}) under {path}; {FAILED_RUN}")
    return files


def _read_file(path: Path) -> list[Run]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: not a readable results file ({e})") from e
    for key in ("results", "n-samples", "config"):
        if not isinstance(data.get(key), dict):
            raise ResultsError(f"{path}: no {key!r} entry; is it an lmms-eval results file?")
    subtasks = data.get("group_subtasks") or {}
    leaves = [t for t in data["results"] if t.startswith(PREFIX) and not subtasks.get(t)]
    if not leaves:
        raise ResultsError(f"{path}: no UniSim-Bench task in its results ({', '.join(data['results']) or 'none'})")
    config = data["config"]
    runs = []
    for mini in (False, True):
        tasks = [t for t in leaves if t.startswith(MINI_PREFIX) == mini]
        if tasks:
            datasets = {d.eval_set: d for d in (_dataset(path, data, t, mini) for t in tasks)}
            runs.append(
                Run(
                    name=data.get("model_name_sanitized") or str(config.get("model", "")),
                    model=str(config.get("model", "")),
                    model_args=str(config.get("model_args") or ""),
                    mini=mini,
                    results_file=path,
                    date=path.name[: -len(RESULTS_SUFFIX)],
                    limit=config.get("limit"),
                    datasets=datasets,
                    config=config,
                )
            )
    return runs


def _dataset(path: Path, data: dict, task: str, mini: bool) -> DatasetResult:
    entry = data["results"][task]
    metrics = {}
    for key, value in entry.items():
        name, _, filt = key.partition(",")
        if filt and "_stderr" not in name and isinstance(value, (int, float)):
            metrics[name] = float(value)
    if "score" not in metrics:
        raise ResultsError(f"{path}: {task} has no score metric")
    counts = data["n-samples"].get(task)
    if not isinstance(counts, dict) or "effective" not in counts:
        raise ResultsError(f"{path}: {task} has no sample count in 'n-samples'")
    n = int(counts["effective"])
    samples = path.with_name(f"{path.name[: -len(RESULTS_SUFFIX)]}_samples_{task}.jsonl")
    logged = (data["config"].get("resolved_cli_args") or {}).get("log_samples")
    if samples.is_file():
        with samples.open(encoding="utf-8") as f:
            lines = sum(1 for line in f if line.strip())
        if lines != n:
            raise ResultsError(f"{samples}: {lines} samples logged, but {path.name} scored {n} for {task}")
    elif logged:
        raise ResultsError(f"{path}: the run logged samples (--log_samples) but {samples.name} is not next to it")
    else:
        samples = None
    eval_set = task[len(MINI_PREFIX if mini else PREFIX) :]
    return DatasetResult(eval_set=eval_set, task=task, metrics=metrics, n_samples=n, samples_file=samples)
