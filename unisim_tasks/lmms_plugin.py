"""The lmms-eval entry point of unisim-bench (group ``lmms_eval.models``).

lmms-eval 0.7.3 finds tasks only in its own folder and in ``--include_path``, but it loads every
``lmms_eval.models`` entry point before it builds its ``TaskManager``. Loading this entry point
therefore also adds the UniSim-Bench task folder to every ``TaskManager``, so
``lmms-eval --tasks unisim_core`` and ``lmms-eval --tasks list`` work with no extra flag. (The
``lmms-eval tasks ...`` subcommand loads no entry points; pass ``--include_path`` there.)
"""

from __future__ import annotations

import os
from pathlib import Path

TASK_DIR = str(Path(__file__).resolve().with_name("tasks"))


def _with_task_dir(include_path) -> list[str]:
    if include_path is None:
        paths = []
    elif isinstance(include_path, (str, os.PathLike)):
        paths = [str(include_path)]
    else:
        paths = [str(p) for p in include_path]
    if not any(os.path.realpath(p) == TASK_DIR for p in paths):
        paths.append(TASK_DIR)
    return paths


def register_task_folder() -> None:
    """Make every lmms-eval ``TaskManager`` index the UniSim-Bench tasks (idempotent)."""
    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    if getattr(original, "_unisim_tasks", False):
        return

    def initialize_tasks(self, include_path=None, include_defaults=True):
        return original(self, include_path=_with_task_dir(include_path), include_defaults=include_defaults)

    initialize_tasks._unisim_tasks = True
    TaskManager.initialize_tasks = initialize_tasks


def manifests() -> list:
    """The entry point: registers the task folder; returns the unisim-bench model manifests."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from unisim_models.distributed import use_cpu_processes_without_cuda

    register_task_folder()
    # lmms-eval's CLI builds its Accelerator() after loading this entry point, before any model
    use_cpu_processes_without_cuda()
    return [
        ModelManifest(model_id="unisim_clip", simple_class_path="unisim_models.unisim_clip.UniSimCLIP"),
        ModelManifest(model_id="unisim_classic", simple_class_path="unisim_models.unisim_classic.UniSimClassic"),
    ]
