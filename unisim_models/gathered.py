"""The common frame of the package's scoring models (``unisim_clip``, ``unisim_classic``).

They answer ``generate_until`` requests of the UniSim-Bench tasks from the structured sample in the
task's document (reference, alternatives, attribute), not from the prompt. All requests of a run
are gathered first; each distinct image (by content hash) is measured once, batch by batch, and
its features kept for the run; then every request is answered from them. Under several processes
(torchrun, accelerate) each rank measures its share of the requests and of every IR gallery, and
the gallery features are gathered.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import torch
from lmms_eval.api.model import lmms
from loguru import logger as eval_logger
from PIL import Image

from unisim_models.distributed import launched_processes, process_mismatch

_IMAGE_FIELDS = ("ref_image", "images")
DEFAULT_BATCH_SIZE = {"cpu": 64, "cuda": 256}  # images per batch, by device type


@dataclass
class Plan:
    """Keys of one request's items, filled while gathering, answered once everything is measured."""

    doc: dict
    images: dict[str, list[str]] = field(default_factory=dict)  # field -> content keys
    texts: list[str] = field(default_factory=list)
    gallery: str | None = None  # IR: the task whose gallery is ranked


def placement(device: str | None, model: str):
    """(accelerator, rank, world size, device). Under a multi-process launch (torchrun, accelerate)
    each rank gets its own accelerator device (``cuda:LOCAL_RANK``) unless one is given with an
    index; alone, the first GPU if there is one."""
    if launched_processes() == 1:
        return None, 0, 1, device or ("cuda" if torch.cuda.is_available() else "cpu")
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=device == "cpu" or not torch.cuda.is_available())
    mismatch = process_mismatch(accelerator)  # e.g. an Accelerator() built earlier without CPU mode
    if mismatch:
        raise RuntimeError(f"{model}: {mismatch}")
    if device is None or device in ("cuda", "auto"):
        device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)
    return accelerator, accelerator.process_index, accelerator.num_processes, device


def batch_size_for(batch_size, device: torch.device, model: str) -> int:
    """Images per batch. lmms-eval's CLI passes the int 1 when --batch_size is not given (a typed
    ``--batch_size 1`` arrives as the string "1"); that, None and "auto" mean the default."""
    if batch_size is None or (batch_size == 1 and isinstance(batch_size, int)) or str(batch_size).startswith("auto"):
        return DEFAULT_BATCH_SIZE.get(device.type, DEFAULT_BATCH_SIZE["cpu"])
    try:
        value = int(batch_size)
    except ValueError:
        raise ValueError(f"{model}: batch_size must be an integer or 'auto', got {batch_size!r}") from None
    if value < 1:
        raise ValueError(f"{model}: batch_size must be >= 1")
    return value


def check_model_args(model: str, kwargs: dict, takes: str) -> None:
    unknown = {k: v for k, v in kwargs.items() if k not in ("max_batch_size",)}  # lmms-eval always passes it
    if unknown:
        raise ValueError(f"{model}: unknown model_args {sorted(unknown)}; it takes {takes}")


class GatheredModel(lmms):
    """Subclasses name themselves (``name``), set ``self.batch_size`` and implement
    ``_measure_images`` (fill ``self._features`` for content keys), ``_answer`` and, if they read
    texts, ``_texts_for`` and ``_measure_texts``."""

    is_simple = True
    name = ""

    def __init__(self, device: str | None) -> None:
        super().__init__()
        self.accelerator, self._rank, self._world_size, self._device_name = placement(device, self.name)
        self._features: dict[str, object] = {}  # image content key -> what the model keeps of it
        self._text_features: dict[str, object] = {}
        self._where: dict[str, tuple] = {}  # image content key -> (task, split, row, field, index)
        self._raw_splits: dict[tuple[str, str], object] = {}
        self._galleries: dict[str, tuple[list[str], list[str]]] = {}
        self._measured_galleries: set[str] = set()

    @property
    def device(self) -> torch.device:
        return torch.device(self._device_name)

    def _log_placement(self, unit: str) -> None:
        eval_logger.info(f"{self.name}: rank {self.rank} of {self.world_size} on {self.device}, {self.batch_size} {unit}")

    # -- lmms-eval API -------------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        plans = [self._plan(*req.args[3:6]) for req in requests]
        self._measure_galleries(plans)
        pending_images, pending_texts = self._pending(plans)
        self._measure_images(pending_images)
        self._measure_texts(pending_texts)
        self._measure_requests(plans)
        return [self._answer(plan) for plan in plans]

    def loglikelihood(self, requests):
        raise NotImplementedError(f"{self.name} scores UniSim-Bench generate_until tasks only")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{self.name} scores UniSim-Bench generate_until tasks only")

    # -- hooks -----------------------------------------------------------------------------------
    def _texts_for(self, doc: dict) -> list[str]:
        return []

    def _images_to_measure(self, plan: Plan) -> list[str]:
        """The content keys of a request whose per-image features the answer reads."""
        return [k for keys in plan.images.values() for k in keys]

    def _measure_images(self, keys: list[str]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _measure_texts(self, texts: list[str]) -> None:
        if texts:
            raise NotImplementedError(f"{self.name} reads no texts")

    def _measure_requests(self, plans: list[Plan]) -> None:
        """Anything measured per request rather than per image (after the images and texts)."""

    def _answer(self, plan: Plan) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- gathering -----------------------------------------------------------------------------
    def _raw(self, task: str, split: str):
        """The split with image columns left encoded (bytes), read row by row from the memory map."""
        if (task, split) not in self._raw_splits:
            self._raw_splits[task, split] = self.task_dict[task][split].with_format("arrow")
        return self._raw_splits[task, split]

    def _plan(self, doc_id: int, task: str, split: str) -> Plan:
        row = self._raw(task, split)[doc_id].to_pylist()[0]
        if "uid" not in row or "task" not in row:
            raise ValueError(f"{self.name} scores UniSim-Bench tasks only; {task!r} has no canonical samples")
        doc = {k: v for k, v in row.items() if k not in _IMAGE_FIELDS}
        plan = Plan(doc=doc, texts=self._texts_for(doc))
        if row.get("ref_image"):
            plan.images["ref_image"] = [self._locate(row["ref_image"]["bytes"], (task, split, doc_id, "ref_image", None))]
        plan.images["images"] = [
            self._locate(v["bytes"], (task, split, doc_id, "images", i)) for i, v in enumerate(row.get("images") or [])
        ]
        if doc["task"] == "ir":
            self._gallery(task)
            plan.gallery = task
        return plan

    def _locate(self, data: bytes, where: tuple) -> str:
        """A content key for an image; remembers one place to read it from again."""
        key = hashlib.sha1(data).hexdigest()
        self._where.setdefault(key, where)
        return key

    def _gallery(self, task: str) -> tuple[list[str], list[str]]:
        """The IR gallery's uids and image keys, read once per task in batches."""
        if task not in self._galleries:
            gallery = self._raw(task, "gallery")
            uids, keys = gallery["uid"].to_pylist(), []
            for start in range(0, len(gallery), self.batch_size):
                chunk = gallery[start : start + self.batch_size].column("image").to_pylist()
                keys += [self._locate(im["bytes"], (task, "gallery", start + i, "image", None)) for i, im in enumerate(chunk)]
            self._galleries[task] = (uids, keys)
        return self._galleries[task]

    def _pending(self, plans: list[Plan]) -> tuple[list[str], list[str]]:
        images, texts = {}, {}
        for plan in plans:
            images.update((k, None) for k in self._images_to_measure(plan) if k not in self._features)
            texts.update((t, None) for t in plan.texts if t not in self._text_features)
        return list(images), list(texts)

    def _measure_galleries(self, plans: list[Plan]) -> None:
        """Measure the IR galleries, shared out across ranks and gathered.

        Alone: the galleries these requests use. Under several processes every rank takes part for
        every gallery of the run, whether or not its share of the queries uses it: the shares are cut
        from the same ordered key list on each rank, so the collectives match.
        """
        if self.world_size == 1:
            tasks = {plan.gallery for plan in plans if plan.gallery}
        else:
            tasks = {t for t, parts in self.task_dict.items() if "gallery" in parts}
        for task in sorted(tasks):
            if task in self._measured_galleries:
                continue
            keys = list(dict.fromkeys(self._gallery(task)[1]))
            share = keys[self.rank :: self.world_size]
            self._measure_images([k for k in share if k not in self._features])
            if self.world_size > 1:
                eval_logger.info(f"{self.name}: rank {self.rank} encodes {len(share)} of the {len(keys)} gallery images of {task}")
                shares = [None] * self.world_size
                torch.distributed.all_gather_object(shares, (share, [self._features[k] for k in share]))
                for rank_keys, features in shares:
                    self._features.update(zip(rank_keys, features))
            self._measured_galleries.add(task)

    def _load_image(self, key: str) -> Image.Image:
        task, split, *_ = place = self._where[key]
        return decode(image_bytes({(task, split): self._raw(task, split)}, place))


def image_bytes(splits: dict, place: tuple) -> bytes:
    """The encoded image at ``place`` (task, split, row, field, index) of the raw (Arrow) splits."""
    task, split, row, name, index = place
    value = splits[task, split][row].column(name)[0]
    return (value[index] if index is not None else value)["bytes"].as_py()


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")
