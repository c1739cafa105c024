"""The paper's Tables 6 (core 2AFC tasks) and 8 (OOD generalization tasks): their layout and rows.

The rows ship as ``paper_table6_core.csv`` and ``paper_table8_ood.csv`` (accuracy in %, IR mAP in %,
one decimal, as printed; an empty cell is the paper's "-"). Their columns are the layout's keys:
an evaluation set of ``unisim_tasks.data.EVAL_SETS``, ``<task>_mean`` (the task's "average" column)
and ``core_average`` / ``ood_average`` (the "Avg" column), ahead of which come ``model_id`` (one id per
model across both tables; the encoder presets' names where there is one), ``name``, ``group``
(``general``, ``specialized``, ``unisim``: the paper's row sections), ``lmm`` (LMM-based; the paper
marks these with a club in Table 6 and an asterisk in Table 8, Compare2Score and DeQA in Table 8
only) and ``paper_label`` (the model's label as printed, superscripts included).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib.resources import files

GROUPS = {"general": "General-purpose models", "specialized": "Specialized models", "unisim": "UniSim models"}


@dataclass(frozen=True)
class TaskColumns:
    """One task's columns: its datasets, then its mean."""

    task: str  # e.g. "img2afc"
    label: str  # as the paper heads it, e.g. "Img-2AFC"
    datasets: tuple[tuple[str, str], ...]  # (evaluation set, the paper's column header)

    @property
    def mean(self) -> str:
        return f"{self.task}_mean"


@dataclass(frozen=True)
class Layout:
    """A table: its tasks in the paper's column order, then the average over the task means."""

    name: str  # "core" or "ood"
    number: int  # the paper's table number
    title: str
    tasks: tuple[TaskColumns, ...]

    @property
    def average(self) -> str:
        return f"{self.name}_average"

    @property
    def columns(self) -> list[str]:
        """Every column key, left to right."""
        return [*(k for t in self.tasks for k in (*(e for e, _ in t.datasets), t.mean)), self.average]

    @property
    def eval_sets(self) -> list[str]:
        return [e for t in self.tasks for e, _ in t.datasets]


def _task(task: str, label: str, *datasets: tuple[str, str]) -> TaskColumns:
    return TaskColumns(task, label, tuple((f"{task}_{name}", header) for name, header in datasets))


LAYOUTS = {
    "core": Layout("core", 6, "Core 2AFC tasks", (
        _task("img2afc", "Img-2AFC", ("nights", "NIGHTS"), ("bapps", "BAPPS"), ("pieapp", "PIEAPP")),
        _task("it2afc", "IT-2AFC", ("imagereward", "IMAGEREWARD"), ("hpdv2", "HPDV-2"), ("agiqa3k", "AGIQA-3K"),
              ("magicbrush", "MAGICBRUSH"), ("hqedit", "HQ-EDIT")),
        _task("text2afc", "Text-2AFC", ("cdcoco", "CD-COCO"), ("polaris", "POLARIS"), ("hqedit", "HQ-EDIT")),
        _task("iqa", "IQA", ("kadid10k", "KADID-10K"), ("koniq10k", "KONIQ-10K"), ("pieapp", "PIEAPP"),
              ("agiqa3k", "AGIQA-3K"), ("pipal", "PIPAL")),
    )),
    "ood": Layout("ood", 8, "OOD generalization tasks", (
        _task("paa", "PAA", ("sice_brightness", "SICE-bri"), ("koniq_brightness", "KONIQ-10K-bri"),
              ("koniq_colorfulness", "KONIQ-10K-col"), ("koniq_contrast", "KONIQ-10K-con"),
              ("koniq_sharpness", "KONIQ-10K-sha")),
        _task("ooo", "OOO", ("imagenet", "ImageNet-OOO"), ("cifar100", "CIFAR-100-OOO")),
        _task("ir", "IR", ("roxford", "ROXFORD"), ("rparis", "RPARIS")),
    )),
}  # fmt: skip


@dataclass(frozen=True)
class PaperRow:
    """One model's row of a paper table."""

    model_id: str
    name: str
    group: str  # a key of GROUPS
    lmm: bool
    paper_label: str
    values: dict[str, float | None]  # column key -> % as printed (None: the paper's "-")


def paper_rows(table: str) -> list[PaperRow]:
    """The rows of the paper's table for ``table`` ("core": Table 6, "ood": Table 8), in its order."""
    layout = LAYOUTS[table]
    name = f"paper_table{layout.number}_{table}.csv"
    with files(__package__).joinpath(name).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        expected = ["model_id", "name", "group", "lmm", "paper_label", *layout.columns]
        if reader.fieldnames != expected:
            raise ValueError(f"{name}: columns {reader.fieldnames}, expected {expected}")
        return [
            PaperRow(
                model_id=r["model_id"],
                name=r["name"],
                group=r["group"],
                lmm=r["lmm"] == "true",
                paper_label=r["paper_label"],
                values={c: float(r[c]) if r[c] else None for c in layout.columns},
            )
            for r in reader
        ]
