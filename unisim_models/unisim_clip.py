"""``unisim_clip``: a CLIP-family encoder as an lmms-eval model.

It answers ``generate_until`` requests of the UniSim-Bench tasks with the option its similarity
scores choose, reading the structured sample (reference, alternatives, attribute) from the task's
document rather than the prompt. The answer is a JSON object, ``{"answer": "B", "scores": ...}``,
so ``--log_samples`` keeps the raw scores; for IR it is the JSON list of gallery uids, best first.

Work is gathered over all requests of a run: every distinct image (by content) and text is encoded
once, in batches; embeddings are kept for the rest of the run, so the IQA prompts or a gallery are
encoded once for all tasks that use them. Images are decoded and preprocessed batch by batch, in
``num_workers`` DataLoader worker processes while the main process runs the forwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field

import torch
from lmms_eval.api.model import lmms
from loguru import logger as eval_logger
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unisim_models import scoring
from unisim_models.encoders import load_encoder
from unisim_tasks.tasks.prompts import letter

_IMAGE_FIELDS = ("ref_image", "images")
DEFAULT_BATCH_SIZE = {"cpu": 64, "cuda": 256}  # images / texts per forward, by device type


@dataclass
class _Plan:
    """Keys of one request's items, filled while gathering, scored once everything is encoded."""

    doc: dict
    images: dict[str, list[str]] = field(default_factory=dict)  # field -> content keys
    texts: list[str] = field(default_factory=list)
    gallery: str | None = None  # IR: the task whose gallery is ranked


def _placement(device: str | None):
    """(accelerator, rank, world size, device). Under a multi-process launch (torchrun, accelerate)
    each rank gets its own accelerator device (``cuda:LOCAL_RANK``) unless one is given with an
    index; alone, the first GPU if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return None, 0, 1, device or ("cuda" if torch.cuda.is_available() else "cpu")
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=device == "cpu" or not torch.cuda.is_available())
    if accelerator.num_processes != world_size:
        # accelerate's state is a process-wide singleton: if something set it up before (lmms-eval's
        # CLI does) without CPU mode, every rank would silently evaluate alone
        raise RuntimeError(
            f"unisim_clip: launched as {world_size} processes but accelerate set up {accelerator.num_processes}; "
            "for CPU processes set ACCELERATE_USE_CPU=1 before the launch"
        )
    if device is None or device in ("cuda", "auto"):
        device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)
    return accelerator, accelerator.process_index, accelerator.num_processes, device


def _decode_workers(num_workers, device: torch.device) -> int:
    """Image decode + preprocess worker processes per rank. Default: one per core of this rank (the
    machine's cores shared among its ranks) beyond the one running the forwards, at most 4. With 2
    cores or fewer: none on the CPU, where the forward already keeps both cores busy and a worker
    only takes time from it (benchmarks/clip_throughput.py: 1.20x the pure forward time with 2
    workers, 1.07x without), and one on an accelerator, whose forward leaves the CPU free."""
    if num_workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        cores //= int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if cores <= 2:
            return 0 if device.type == "cpu" else 1
        return min(4, cores - 1)
    try:
        value = int(num_workers)
    except ValueError:
        raise ValueError(f"unisim_clip: num_workers must be an integer, got {num_workers!r}") from None
    if value < 0:
        raise ValueError("unisim_clip: num_workers must be >= 0")
    return value


def _encoding_batch(batch_size, device: torch.device) -> int:
    """Images / texts per forward. lmms-eval's CLI passes the int 1 when --batch_size is not given
    (a typed ``--batch_size 1`` arrives as the string "1"); that, None and "auto" mean the default."""
    if batch_size is None or (batch_size == 1 and isinstance(batch_size, int)) or str(batch_size).startswith("auto"):
        return DEFAULT_BATCH_SIZE.get(device.type, DEFAULT_BATCH_SIZE["cpu"])
    try:
        value = int(batch_size)
    except ValueError:
        raise ValueError(f"unisim_clip: batch_size must be an integer or 'auto', got {batch_size!r}") from None
    if value < 1:
        raise ValueError("unisim_clip: batch_size must be >= 1")
    return value


class _Pixels(Dataset):
    """Pixel tensors of images, each read again from the raw (Arrow) row it was found in and decoded
    and preprocessed where this runs: in a DataLoader worker or, without workers, in the caller."""

    def __init__(self, places: list[tuple], splits: dict, transform) -> None:
        self.places, self.splits, self.transform = places, splits, transform

    def __len__(self) -> int:
        return len(self.places)

    def __getitem__(self, i: int) -> torch.Tensor:
        task, split, row, name, index = self.places[i]
        value = self.splits[task, split][row].column(name)[0]
        data = (value[index] if index is not None else value)["bytes"].as_py()
        return self.transform([Image.open(io.BytesIO(data)).convert("RGB")])[0]


class UniSimCLIP(lmms):
    is_simple = True

    def __init__(
        self,
        model: str | None = None,
        pretrained: str | None = None,
        model_config: str | None = None,
        hf_model: str | None = None,
        lora: str | None = None,
        device: str | None = None,
        dtype: str = "float32",
        batch_size: int | str | None = None,
        num_workers: int | str | None = None,
        iqa_mode: str = "both",
        **kwargs,
    ) -> None:
        super().__init__()
        unknown = {k: v for k, v in kwargs.items() if k not in ("max_batch_size",)}
        if unknown:
            raise ValueError(
                f"unisim_clip: unknown model_args {sorted(unknown)}; it takes model, pretrained, model_config, "
                "hf_model, lora, device, dtype, batch_size, num_workers, iqa_mode"
            )
        if iqa_mode not in scoring.IQA_MODES:
            raise ValueError(f"unisim_clip: iqa_mode must be one of {scoring.IQA_MODES}, got {iqa_mode!r}")
        self.iqa_mode = iqa_mode
        self.accelerator, self._rank, self._world_size, device = _placement(device)
        self.batch_size = _encoding_batch(batch_size, torch.device(device))
        self.num_workers = _decode_workers(num_workers, torch.device(device))
        self.encoder = load_encoder(
            model=model, pretrained=pretrained, model_config=model_config, hf_model=hf_model, lora=lora,
            device=device, dtype=dtype,
        )  # fmt: skip
        eval_logger.info(
            f"unisim_clip: rank {self.rank} of {self.world_size} on {self.encoder.device}, "
            f"{self.batch_size} images / texts per forward, {self.num_workers} image decode workers"
        )
        self._image_emb: dict[str, torch.Tensor] = {}
        self._text_emb: dict[str, torch.Tensor] = {}
        self._where: dict[str, tuple] = {}  # image content key -> (task, split, row, field, index)
        self._raw_splits: dict[tuple[str, str], object] = {}
        self._galleries: dict[str, tuple[list[str], list[str]]] = {}
        self._encoded_galleries: set[str] = set()

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    # -- lmms-eval API -------------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        plans = [self._plan(*req.args[3:6]) for req in requests]
        self._encode_galleries(plans)
        pending_images, pending_texts = self._pending(plans)
        self._encode_images(pending_images)
        self._encode_texts(pending_texts)
        return [self._answer(plan) for plan in plans]

    def loglikelihood(self, requests):
        raise NotImplementedError("unisim_clip scores UniSim-Bench generate_until tasks only")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("unisim_clip scores UniSim-Bench generate_until tasks only")

    # -- gathering -----------------------------------------------------------------------------
    def _raw(self, task: str, split: str):
        """The split with image columns left encoded (bytes), read row by row from the memory map."""
        if (task, split) not in self._raw_splits:
            self._raw_splits[task, split] = self.task_dict[task][split].with_format("arrow")
        return self._raw_splits[task, split]

    def _plan(self, doc_id: int, task: str, split: str) -> _Plan:
        row = self._raw(task, split)[doc_id].to_pylist()[0]
        if "uid" not in row or "task" not in row:
            raise ValueError(f"unisim_clip scores UniSim-Bench tasks only; {task!r} has no canonical samples")
        doc = {k: v for k, v in row.items() if k not in _IMAGE_FIELDS}
        plan = _Plan(doc=doc)
        if row.get("ref_image"):
            plan.images["ref_image"] = [self._locate(row["ref_image"]["bytes"], (task, split, doc_id, "ref_image", None))]
        plan.images["images"] = [
            self._locate(v["bytes"], (task, split, doc_id, "images", i)) for i, v in enumerate(row.get("images") or [])
        ]
        kind = doc["task"]
        if kind == "it2afc":
            plan.texts = [doc["ref_text"]]
        elif kind == "text2afc":
            plan.texts = list(doc["texts"])
        elif kind in ("iqa", "paa"):
            plan.texts = scoring.prompts_for(doc)
        elif kind == "ir":
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

    def _pending(self, plans: list[_Plan]) -> tuple[list[str], list[str]]:
        images, texts = {}, {}
        for plan in plans:
            images.update((k, None) for ks in plan.images.values() for k in ks if k not in self._image_emb)
            texts.update((t, None) for t in plan.texts if t not in self._text_emb)
        return list(images), list(texts)

    def _encode_galleries(self, plans: list[_Plan]) -> None:
        """Encode the IR galleries, shared out across ranks and gathered.

        Alone: the galleries these requests use. Under several processes every rank takes part for
        every gallery of the run, whether or not its share of the queries uses it: the shares are cut
        from the same ordered key list on each rank, so the collectives match.
        """
        if self.world_size == 1:
            tasks = {plan.gallery for plan in plans if plan.gallery}
        else:
            tasks = {t for t, parts in self.task_dict.items() if "gallery" in parts}
        for task in sorted(tasks):
            if task in self._encoded_galleries:
                continue
            keys = list(dict.fromkeys(self._gallery(task)[1]))
            if self.world_size == 1:
                self._encode_images([k for k in keys if k not in self._image_emb])
            else:
                share = keys[self.rank :: self.world_size]
                self._encode_images([k for k in share if k not in self._image_emb])
                eval_logger.info(f"unisim_clip: rank {self.rank} encodes {len(share)} of the {len(keys)} gallery images of {task}")
                shares = [None] * self.world_size
                torch.distributed.all_gather_object(shares, (share, self._images(share) if share else None))
                for rank_keys, embeddings in shares:
                    if rank_keys:
                        self._image_emb.update(zip(rank_keys, embeddings))
            self._encoded_galleries.add(task)

    # -- encoding ------------------------------------------------------------------------------
    def _encode_images(self, keys: list[str]) -> None:
        if not keys:
            return
        places = [self._where[k] for k in keys]
        splits = {(task, split): self._raw(task, split) for task, split, *_ in places}
        batches = range(0, len(keys), self.batch_size)
        # starting workers costs more than they save on a batch or two. DataLoader runs torch on one
        # thread in each worker, so workers do not multiply the forward's threads
        workers = min(self.num_workers, len(batches)) if len(batches) > 2 else 0
        loader = DataLoader(
            _Pixels(places, splits, self.encoder.pixel_transform), batch_size=self.batch_size, num_workers=workers,
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        quiet = {"disable": True} if self.rank != 0 else {}  # else tqdm's own default (TQDM_DISABLE)
        for start, pixels in zip(batches, tqdm(loader, desc="unisim_clip images", **quiet)):
            self._image_emb.update(zip(keys[start : start + self.batch_size], self.encoder.encode_pixels(pixels)))

    def _encode_texts(self, texts: list[str]) -> None:
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            self._text_emb.update(zip(batch, self.encoder.encode_texts(batch)))

    def _images(self, keys: list[str]) -> torch.Tensor:
        return torch.stack([self._image_emb[k] for k in keys])

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._text_emb[t] for t in texts])

    # -- answering -----------------------------------------------------------------------------
    def _answer(self, plan: _Plan) -> str:
        doc, kind = plan.doc, plan.doc["task"]
        if kind == "ir":
            uids, keys = self._galleries[plan.gallery]
            sims = scoring.cos(self._images(plan.images["ref_image"]), self._images(keys))[0]
            return json.dumps([uids[i] for i in torch.argsort(sims, descending=True, stable=True).tolist()])
        alternatives = plan.images["images"]
        if kind == "img2afc":
            scores = scoring.cos(self._images(plan.images["ref_image"]), self._images(alternatives))[0].tolist()
        elif kind == "it2afc":
            scores = scoring.cos(self._texts(plan.texts), self._images(alternatives))[0].tolist()
        elif kind == "text2afc":
            scores = scoring.cos(self._images(plan.images["ref_image"]), self._texts(plan.texts))[0].tolist()
        elif kind == "ooo":
            odd, pair_sims = scoring.odd_one_out(self._images(alternatives))
            return json.dumps({"answer": letter(odd), "pair_similarities": pair_sims})
        elif kind in ("iqa", "paa"):
            return self._quality_answer(plan, alternatives)
        else:
            raise ValueError(f"unisim_clip: unknown task type {kind!r} in {doc['uid']}")
        return json.dumps({"answer": letter(scoring.argmax(scores)), "scores": scores})

    def _quality_answer(self, plan: _Plan, alternatives: list[str]) -> str:
        per_mode = scoring.quality_scores(self._images(alternatives), self._texts(plan.texts), self.encoder.logit_scale)
        modes = ("naive", "clip-iqa") if self.iqa_mode == "both" else (self.iqa_mode,)
        choices = {m: letter(scoring.quality_choice(per_mode, m)) for m in modes}
        if "clip-iqa" not in modes:
            del per_mode["clip-iqa"], per_mode["clip-iqa-logit"]
        # with both, the answer is the naive one; choices lets a leaderboard report the better mode
        return json.dumps({"answer": choices[modes[0]], "choices": choices, "scores": per_mode})

