"""Training data: the prepared training sets of each task, one seeded global sample order per task,
and the per-step batches, decoded and preprocessed where the DataLoader runs them (its workers).

Order. For a task whose concatenated sets hold ``n`` samples, pass ``p`` is the permutation that
sorts the samples by SHA-256 of ``(seed, "clip_lora", task, p, "<eval set>/<uid>")``; the epoch is
the first ``samples_per_task`` entries of pass 0, pass 1, ... So the order depends on the seed and
the samples only, not on the number of processes, workers or the order the sets were named in.

Sharding. Step ``s`` takes entries ``[s * B, (s + 1) * B)`` of every task's order (``B`` =
``--batch-size``). Those are cut into ``A`` accumulation micro-batches, and each micro-batch into
``W`` contiguous rank shares of ``b = B / (A * W)``: rank ``r`` of micro-batch ``a`` takes entries
``s * B + a * B / A + r * b`` onward. The ranks of a step together hold exactly the one-process batch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from unisim_tasks.data.builder import get_builder
from unisim_tasks.data.raw import sha256_file
from unisim_tasks.data.sampling import Sampler
from unisim_tasks.data.store import (
    MANIFEST, NotPreparedError, UnreadableSetError, data_root, prepare_command, prepared_folder,
)  # fmt: skip
from unisim_models.scoring import REFERENCE_AND_ALTERNATIVES

from .config import CORE_TASKS, TrainConfig, TrainingError

# (reference, alternatives) of each task: what an index in a batch's "ref" / "alt" points into
TASK_KINDS = {task: REFERENCE_AND_ALTERNATIVES[task] for task in CORE_TASKS}
_COLUMNS = {
    "img2afc": ["ref_image", "images", "label"],
    "it2afc": ["ref_text", "images", "label"],
    "text2afc": ["ref_image", "texts", "label"],
    "iqa": ["images", "label"],
}


@dataclass
class TaskData:
    task: str
    samples: datasets.Dataset  # the task's training sets concatenated, needed columns, Arrow format
    keys: list[str]  # "<eval set>/<uid>" of every row, what the order is drawn from
    sources: list[dict]  # per set: eval_set, num_samples, manifest_sha256


def load_training_data(config: TrainConfig) -> dict[str, TaskData]:
    """The prepared training sets of every task; all missing ones are named in one error."""
    root = data_root(config.data_dir)
    folders, missing = {}, []
    for task in config.tasks:
        for eval_set in config.eval_sets(task):
            try:
                folders[eval_set] = prepared_folder(eval_set, "train", data_dir=root)
            except UnreadableSetError as e:  # prepared, but by a datasets version this one cannot read
                raise TrainingError(str(e)) from None
            except NotPreparedError:
                dataset = eval_set.split("_", 1)[1]
                command = prepare_command(get_builder(dataset), "train")
                missing.append(f"{eval_set} ({command}{'' if config.data_dir is None else f' --data-dir {root}'})")
    if missing:
        raise TrainingError(f"training sets not prepared under {root}: {'; '.join(missing)}")
    out = {}
    for task in config.tasks:
        parts, keys, sources = [], [], []
        for eval_set in config.eval_sets(task):
            folder = folders[eval_set]
            samples = datasets.load_from_disk(str(folder))["samples"]
            kinds = set(samples.unique("task"))
            if kinds != {task}:
                raise TrainingError(f"{folder} holds {', '.join(sorted(kinds))} samples, not {task}")
            keys += [f"{eval_set}/{uid}" for uid in samples["uid"]]
            parts.append(samples.select_columns(_COLUMNS[task]))
            sources.append({
                "eval_set": eval_set, "num_samples": len(samples),
                "manifest_sha256": sha256_file(folder / MANIFEST),
            })  # fmt: skip
        samples = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        out[task] = TaskData(task, samples.with_format("arrow"), keys, sources)
    return out


def task_order(seed: int, task: str, keys: list[str], count: int) -> np.ndarray:
    """The first ``count`` row indices of the task's seeded order (see the module docstring)."""
    sampler = Sampler(seed, "clip_lora", task)
    out, n, p = [], len(keys), 0
    while len(out) < count:
        draw = sampler.child(str(p))
        out += sorted(range(n), key=lambda i: draw.u64(keys[i]))
        p += 1
    return np.asarray(out[:count], dtype=np.int64)


class StepPlan:
    """Which samples of every task each (step, micro-batch, rank) takes."""

    def __init__(self, orders: dict[str, np.ndarray], batch_size: int, world_size: int, accumulation: int):
        if batch_size % (world_size * accumulation):
            raise TrainingError(
                f"--batch-size {batch_size} (per task and step) does not split evenly over {world_size} process(es) "
                f"x {accumulation} accumulation step(s); choose a multiple of {world_size * accumulation}"
            )
        self.orders = orders
        self.batch_size, self.world_size, self.accumulation = batch_size, world_size, accumulation
        self.micro = batch_size // (world_size * accumulation)  # per task, rank and micro-batch
        self.steps = min(len(o) for o in orders.values()) // batch_size

    def indices(self, step: int, micro: int, rank: int) -> dict[str, np.ndarray]:
        start = step * self.batch_size + micro * (self.batch_size // self.accumulation) + rank * self.micro
        return {task: order[start : start + self.micro] for task, order in self.orders.items()}


def build_plan(config: TrainConfig, data: dict[str, TaskData], world_size: int) -> StepPlan:
    orders = {t: task_order(config.seed, t, d.keys, config.samples_per_task) for t, d in data.items()}
    return StepPlan(orders, config.batch_size, world_size, config.gradient_accumulation_steps)


def _decode(value: dict) -> Image.Image:
    return Image.open(io.BytesIO(value["bytes"])).convert("RGB")


class MicroBatches(Dataset):
    """Item ``i``: this rank's micro-batch ``i`` from ``start_step`` on, as model inputs per task.

    Per task: ``pixel_values`` holds its images, ``input_ids`` / ``attention_mask`` its texts (the
    IQA prompt once); ``ref`` and ``alt`` index into those (``TASK_KINDS``) and ``label`` is the
    index of the chosen alternative.
    """

    def __init__(self, data, plan: StepPlan, rank: int, start_step: int, end_step: int, processor, max_length: int,
                 iqa_prompt: str) -> None:  # fmt: skip
        self.parts = {t: d.samples for t, d in data.items()}
        self.plan, self.rank = plan, rank
        self.start_step, self.end_step = start_step, end_step
        self.image_processor, self.tokenizer = processor.image_processor, processor.tokenizer
        self.max_length, self.iqa_prompt = max_length, iqa_prompt

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.plan.accumulation

    def __getitem__(self, i: int) -> dict[str, dict]:
        step, micro = divmod(i, self.plan.accumulation)
        return {
            task: self._inputs(task, self.parts[task][rows.tolist()].to_pylist())
            for task, rows in self.plan.indices(self.start_step + step, micro, self.rank).items()
        }

    def _inputs(self, task: str, records: list[dict]) -> dict:
        images, texts = [], []

        def add(items: list, values: list) -> list[int]:
            items += values
            return list(range(len(items) - len(values), len(items)))

        if task == "img2afc":
            ref = add(images, [_decode(r["ref_image"]) for r in records])
            alt = add(images, [_decode(v) for r in records for v in r["images"]])
        elif task == "it2afc":
            ref = add(texts, [r["ref_text"] for r in records])
            alt = add(images, [_decode(v) for r in records for v in r["images"]])
        elif task == "text2afc":
            ref = add(images, [_decode(r["ref_image"]) for r in records])
            alt = add(texts, [t for r in records for t in r["texts"]])
        else:  # iqa: every sample against the one prompt
            ref = add(texts, [self.iqa_prompt]) * len(records)
            alt = add(images, [_decode(v) for r in records for v in r["images"]])
        inputs = {
            "pixel_values": self.image_processor(images=images, return_tensors="pt")["pixel_values"],
            "ref": torch.tensor(ref), "alt": torch.tensor(alt).view(len(records), 2),
            "label": torch.tensor([r["label"] for r in records]),
        }  # fmt: skip
        if texts:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            inputs["input_ids"], inputs["attention_mask"] = enc["input_ids"], enc["attention_mask"]
        return inputs
