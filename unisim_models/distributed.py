"""Multi-process launches (torchrun, accelerate launch) of the package's models and trainers."""

from __future__ import annotations

import os


def launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def cores_per_process() -> int:
    """This process's share of the cores it may run on (shared with the other ranks on its node)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def use_cpu_processes_without_cuda() -> None:
    """A multi-process launch on a machine without CUDA is CPU data parallelism: tell accelerate.

    Without ``ACCELERATE_USE_CPU`` accelerate's state (a process-wide singleton, built by the first
    ``Accelerator()``) says "one process" on every rank of a CPU ``torchrun --nproc_per_node N``,
    and no later ``Accelerator(cpu=True)`` can change it. Call this before the first one.
    """
    if launched_processes() > 1:
        import torch

        if not torch.cuda.is_available():
            os.environ.setdefault("ACCELERATE_USE_CPU", "1")


def process_mismatch(accelerator) -> str | None:
    """Why accelerate's processes are not the launched ones (each rank would run alone), or None."""
    launched = launched_processes()
    if accelerator.num_processes == launched:
        return None
    return (
        f"launched as {launched} processes but accelerate set up {accelerator.num_processes}; "
        "for CPU processes set ACCELERATE_USE_CPU=1 before the launch"
    )
