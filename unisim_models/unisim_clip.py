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

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unisim_models import presets, scoring
from unisim_models.distributed import cores_per_process
from unisim_models.encoders import load_encoder
from unisim_models.gathered import GatheredModel, Plan, batch_size_for, check_model_args, decode, image_bytes
from unisim_tasks.tasks.prompts import letter


def _decode_workers(num_workers, device: torch.device) -> int:
    """Image decode + preprocess worker processes per rank. Default: one per core of this rank (the
    machine's cores shared among its ranks) beyond the one running the forwards, at most 4. With 2
    cores or fewer: none on the CPU, where the forward already keeps both cores busy and a worker
    only takes time from it (benchmarks/clip_throughput.py, all-distinct data on 2 cores: end to
    end 1.07-1.20x the pure forward time without workers, 1.14x with one, 1.23-1.25x with two),
    and one on an accelerator, whose forward leaves the CPU free."""
    if num_workers is None:
        cores = cores_per_process()
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


def _encoder_args(model, pretrained, model_config, hf_model, lora) -> dict:
    """``load_encoder``'s arguments; ``model=`` may be a preset (``unisim_vit_b_32``, ...) or a model
    folder (a trainer's output, an HF CLIP / SigLIP folder) instead of an open_clip name."""
    if model is None or not (presets.is_preset(model) or Path(model).expanduser().is_dir()):
        return {"model": model, "pretrained": pretrained, "model_config": model_config, "hf_model": hf_model, "lora": lora}
    extra = [k for k, v in (("pretrained", pretrained), ("model_config", model_config), ("hf_model", hf_model)) if v]
    if extra:
        raise ValueError(f"unisim_clip: model={model} names a whole encoder; leave out {', '.join(extra)}")
    resolved = presets.resolve(model, lora)
    if resolved.encoder_args is None:
        raise ValueError(f"unisim_clip: {model} is an LLaVA model, not an encoder: evaluate it with --model llava_hf")
    return resolved.encoder_args


class _Pixels(Dataset):
    """Pixel tensors of images, each read again from the raw (Arrow) row it was found in and decoded
    and preprocessed where this runs: in a DataLoader worker or, without workers, in the caller."""

    def __init__(self, places: list[tuple], splits: dict, transform) -> None:
        self.places, self.splits, self.transform = places, splits, transform

    def __len__(self) -> int:
        return len(self.places)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform([decode(image_bytes(self.splits, self.places[i]))])[0]


class UniSimCLIP(GatheredModel):
    name = "unisim_clip"

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
        check_model_args(
            self.name, kwargs, "model, pretrained, model_config, hf_model, lora, device, dtype, batch_size, num_workers, iqa_mode"
        )
        if iqa_mode not in scoring.IQA_MODES:
            raise ValueError(f"unisim_clip: iqa_mode must be one of {scoring.IQA_MODES}, got {iqa_mode!r}")
        super().__init__(device)
        self.iqa_mode = iqa_mode
        self.batch_size = batch_size_for(batch_size, self.device, self.name)
        self.num_workers = _decode_workers(num_workers, self.device)
        args = _encoder_args(model, pretrained, model_config, hf_model, lora)
        self.encoder = load_encoder(**args, device=self._device_name, dtype=dtype)
        self._log_placement(f"images / texts per forward, {self.num_workers} image decode workers")

    # -- encoding ------------------------------------------------------------------------------
    def _texts_for(self, doc: dict) -> list[str]:
        kind = doc["task"]
        if kind == "it2afc":
            return [doc["ref_text"]]
        if kind == "text2afc":
            return list(doc["texts"])
        if kind in ("iqa", "paa"):
            return scoring.prompts_for(doc)
        return []

    def _measure_images(self, keys: list[str]) -> None:
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
            self._features.update(zip(keys[start : start + self.batch_size], self.encoder.encode_pixels(pixels)))

    def _measure_texts(self, texts: list[str]) -> None:
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            self._text_features.update(zip(batch, self.encoder.encode_texts(batch)))

    def _images(self, keys: list[str]) -> torch.Tensor:
        return torch.stack([self._features[k] for k in keys])

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._text_features[t] for t in texts])

    # -- answering -----------------------------------------------------------------------------
    def _answer(self, plan: Plan) -> str:
        doc, kind = plan.doc, plan.doc["task"]
        if kind == "ir":
            uids, keys = self._galleries[plan.gallery]
            sims = scoring.cos(self._images(plan.images["ref_image"]), self._images(keys))[0]
            return json.dumps([uids[i] for i in scoring.ranking(sims)])
        if kind not in scoring.REFERENCE_AND_ALTERNATIVES:
            raise ValueError(f"unisim_clip: unknown task type {kind!r} in {doc['uid']}")
        ref_kind, alt_kind = scoring.REFERENCE_AND_ALTERNATIVES[kind]

        def embeddings(side: str, image_field: str) -> torch.Tensor:
            return self._texts(plan.texts) if side == "text" else self._images(plan.images[image_field])

        alternatives = embeddings(alt_kind, "images")
        reference = embeddings(ref_kind, "ref_image") if ref_kind else None
        modes = scoring.QUALITY_MODES if self.iqa_mode == "both" else (self.iqa_mode,)
        return answer_json(scoring.judge(kind, alternatives, reference, logit_scale=self.encoder.logit_scale, modes=modes))


def answer_json(judgement: scoring.Judgement) -> str:
    """``unisim_clip``'s answer: the chosen letter and the scores it chose by (``--log_samples``)."""
    out = {"answer": letter(judgement.choice)}
    if judgement.choices:  # IQA / PAA: with both modes, the answer is the naive one; a report can take the better
        out["choices"] = {m: letter(c) for m, c in judgement.choices.items()}
        out["scores"] = judgement.scores
    elif "similarity" in judgement.scores:
        out["scores"] = judgement.scores["similarity"]
    else:
        out.update(judgement.scores)
    return json.dumps(out)
