"""Builder base class and registry: one builder per raw dataset, each yielding its evaluation sets.

A builder names the raw folder it reads, documents that folder's layout (quoted in every
missing-file error), and for each split lists the evaluation sets it writes with their default
sample counts (Table 1 for ``test``, Table 5 for ``train``). ``candidates`` yields canonical
records in sampling-priority order; the store keeps the first ``num_samples`` whose images read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .raw import RawDir
from .sampling import Sampler

SPLITS = ("test", "train")


@dataclass
class Report:
    """What a build skipped or could not parse; both go to the manifest."""

    skipped: list[dict[str, str]] = field(default_factory=list)
    malformed: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append({"item": str(item), "reason": reason})

    def bad_row(self, file: str, row: Any, reason: str) -> None:
        self.malformed.append({"file": file, "row": row, "reason": reason})


@dataclass
class BuildContext:
    raw: RawDir | None
    split: str
    seed: int
    num_samples: int
    params: dict[str, Any]
    sampler: Sampler
    report: Report


class Builder:
    name: str = ""  # the --dataset name
    raw_folder: str | None = None  # folder inside --raw-dir; None for generated data
    raw_folder_alternatives: tuple[str, ...] = ()  # other names that folder goes by (e.g. in the authors' loaders)
    archive: str | None = None  # its tarball in the authors' HF dataset, if it is there
    layout: str = ""  # expected raw layout, shown when something is missing
    version: str = "1"
    outputs: dict[str, dict[str, int]] = {}  # split -> {eval set: default sample count}
    # eval set -> {parameter: default}: the `prepare` options it takes (e.g. num_alternatives); the
    # values used are recorded in its manifest, so a re-run with other values needs --overwrite
    params_accepted: dict[str, dict[str, Any]] = {}

    @property
    def raw_folders(self) -> tuple[str, ...]:
        """The names the raw folder is looked for under, ``raw_folder`` first."""
        return (self.raw_folder, *self.raw_folder_alternatives)

    def candidates(self, ctx: BuildContext, eval_set: str) -> Iterable[dict]:
        """Canonical records (``schema.sample``) of ``eval_set`` in the order they are to be kept."""
        raise NotImplementedError

    def parts(self, ctx: BuildContext, eval_set: str) -> dict[str, Iterable[dict]]:
        """The record streams of an evaluation set: ``samples``, or for IR ``queries`` and ``gallery``."""
        return {"samples": self.candidates(ctx, eval_set)}


BUILDERS: dict[str, Builder] = {}


def register(cls: type[Builder]) -> type[Builder]:
    if cls.name in BUILDERS:
        raise ValueError(f"builder {cls.name!r} registered twice")
    BUILDERS[cls.name] = cls()
    return cls


def all_builders() -> dict[str, Builder]:
    from . import builders  # noqa: F401  (registers every builder module)

    return BUILDERS


def get_builder(name: str) -> Builder:
    builders = all_builders()
    if name not in builders:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(builders))}, all")
    return builders[name]


def builder_for_eval_set(eval_set: str) -> tuple[Builder, str]:
    """The raw-data builder and split that write ``eval_set`` (searching test first)."""
    for builder in all_builders().values():
        if builder.raw_folder is None:  # the mini benchmark mirrors every set
            continue
        for split in SPLITS:
            if eval_set in builder.outputs.get(split, {}):
                return builder, split
    raise KeyError(f"no builder writes evaluation set {eval_set!r}")


def task_of(eval_set: str) -> str:
    return eval_set.split("_", 1)[0]
