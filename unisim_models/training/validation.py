"""Periodic validation: the current adapter scored exactly as an lmms-eval run of ``unisim_clip``
scores it, by ``unisim_clip`` itself (its scoring rules, ``unisim_models.scoring``) answering the
requests and the tasks' ``process_results`` hook turning answers into accuracy.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import datasets
import torch

from unisim_tasks.data.store import prepared_folder

from .config import CORE_TASKS, TrainConfig, TrainingError

SPLIT = "samples"


def validation_sets(config: TrainConfig) -> list[tuple[str, bool]]:
    """(eval set, from the mini benchmark) pairs to validate on."""
    from unisim_tasks.data import EVAL_SETS

    sets = [(e, False) for e in config.validation_sets]
    if config.validation_mini:
        sets += [(e, True) for e in EVAL_SETS if e.split("_", 1)[0] in CORE_TASKS]
    return sets


def check_prepared(config: TrainConfig) -> None:
    """Fail at start, not at the first validation, when a validation set is not prepared."""
    from unisim_tasks.data import NotPreparedError

    for eval_set, mini in validation_sets(config):
        try:
            prepared_folder(eval_set, "test", data_dir=config.data_dir, mini=mini)
        except NotPreparedError as e:
            raise TrainingError(f"validation set: {e}") from None


def validate(config: TrainConfig, adapter: Path, device: torch.device) -> dict[str, float]:
    """Accuracy per validation set (``mini/<set>`` for the mini benchmark's), on at most
    ``config.validation_samples`` samples each; IQA is the naive mode's (the prompt trained on)."""
    from unisim_models.unisim_clip import UniSimCLIP
    from unisim_tasks.tasks.utils import process_results

    model = UniSimCLIP(hf_model=config.base_model, lora=str(adapter), device=str(device), iqa_mode="naive")
    task_dict, requests, docs = {}, [], []
    for eval_set, mini in validation_sets(config):
        name = f"mini/{eval_set}" if mini else eval_set
        folder = prepared_folder(eval_set, "test", data_dir=config.data_dir, mini=mini)
        samples = datasets.load_from_disk(str(folder))[SPLIT]
        samples = samples.select(range(min(len(samples), config.validation_samples)))
        task_dict[name] = {SPLIT: samples}
        rows = samples.with_format("arrow").select_columns(["task", "label", "texts", "images", "meta"])
        for i, doc in enumerate(rows[:].to_pylist()):
            requests.append(SimpleNamespace(args=("", {}, None, i, name, SPLIT)))
            docs.append((name, doc))
    model.task_dict = task_dict
    answers = model.generate_until(requests)
    correct: dict[str, list[float]] = {}
    for (name, doc), answer in zip(docs, answers):
        correct.setdefault(name, []).append(process_results(doc, [answer])["acc"])
    return {name: sum(v) / len(v) for name, v in correct.items()}
