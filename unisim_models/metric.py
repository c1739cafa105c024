"""UniSim as a metric called from Python: ``create_metric(name_or_path)``.

An encoder metric (a preset such as ``"unisim_vit_b_32"``, a trainer output folder, an HF CLIP /
SigLIP folder) decides with ``unisim_models.scoring.judge``, the rule ``unisim_clip`` answers
lmms-eval with, on embeddings from the same preprocessing, so its choices are the ones
``lmms-eval --model unisim_clip`` gives on the same sample. An LMM metric (an HF LLaVA /
LLaVA-OneVision folder, e.g. a UniSim-LL-N trained here) is prompted with the task's Table 7
template and its reply read by the package's answer parser.

Images may be PIL images, file paths, encoded bytes, or tensors (``[3, H, W]`` floats in [0, 1] or
uint8; ``[N, 3, H, W]`` for several); they go through the model's own preprocessing. Every method
takes one sample, or a batch as lists (``img2afc([r1, r2], [a1, a2], [b1, b2])``), and returns one
``Judgement`` or a list of them; each distinct image and text of a call is encoded once, in batches.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from unisim_models import presets, scoring
from unisim_models.scoring import Judgement

__all__ = ["create_metric", "EncoderMetric", "Judgement"]


def create_metric(
    name_or_path: str | os.PathLike, device: str | None = None, *, lora: str | os.PathLike | None = None,
    dtype: str = "float32", batch_size: int = 64, quality_mode: str | None = None, **lmm_options,
):  # fmt: skip
    """A metric from a preset name (``unisim_models.list_presets()``) or a model folder.

    ``lora``: a UniSim LoRA checkpoint (required by the ``unisim_*`` presets unless saved under
    ``$UNISIM_CHECKPOINTS``). ``quality_mode``: ``"naive"`` or ``"clip-iqa"`` for ``quality`` and
    ``attribute`` (default: the preset's; the paper reports the better of the two per task).
    ``lmm_options`` go to an LMM metric (``max_new_tokens``).
    """
    resolved = presets.resolve(name_or_path, lora)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if resolved.lmm_folder is not None:
        from unisim_models.lmm_metric import LMMMetric

        return LMMMetric(resolved.lmm_folder, device=device, dtype=dtype, **lmm_options)
    if lmm_options:
        raise TypeError(f"unexpected arguments for an encoder metric: {sorted(lmm_options)}")
    from unisim_models.encoders import load_encoder

    encoder = load_encoder(**resolved.encoder_args, device=device, dtype=dtype)
    return EncoderMetric(encoder, resolved.name, batch_size=batch_size, quality_mode=quality_mode or resolved.quality_mode)


# -- inputs -----------------------------------------------------------------------------------
def to_pil(image) -> Image.Image:
    """An RGB PIL image from a PIL image, a path, encoded bytes, an array or a [3, H, W] tensor."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image file not found: {image}")
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image)).convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"an image tensor is [3, H, W] (or [1, H, W]); got shape {tuple(image.shape)}")
        if image.dtype != torch.uint8:
            image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        image = image.cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        return Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image).convert("RGB")
    raise TypeError(f"not an image: {type(image).__name__} (give a PIL image, a path, bytes or a tensor)")


def _is_one_image(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.ndim == 3
    return isinstance(value, (Image.Image, str, os.PathLike, bytes, bytearray, np.ndarray))


def _images(value) -> list:
    """A sequence of images: a list, or an [N, 3, H, W] tensor."""
    if isinstance(value, torch.Tensor) and value.ndim == 4:
        return list(value)
    if _is_one_image(value) or not isinstance(value, Sequence):
        raise TypeError(f"expected several images (a list or an [N, 3, H, W] tensor), got {type(value).__name__}")
    return list(value)


def _check_lengths(name: str, *columns) -> int:
    sizes = {len(c) for c in columns}
    if len(sizes) != 1:
        raise ValueError(f"{name}: the batch's arguments have different lengths {[len(c) for c in columns]}")
    return sizes.pop()


class EncoderMetric:
    """A CLIP-family encoder as a perceptual metric; see the module's docstring."""

    def __init__(self, encoder, name: str, *, batch_size: int = 64, quality_mode: str = "clip-iqa") -> None:
        if quality_mode not in scoring.QUALITY_MODES:
            raise ValueError(f"quality_mode must be one of {scoring.QUALITY_MODES}, got {quality_mode!r}")
        self.encoder, self.name, self.batch_size, self.quality_mode = encoder, name, batch_size, quality_mode

    def __repr__(self) -> str:
        return f"EncoderMetric({self.name!r}, device={self.encoder.device})"

    # -- tasks -----------------------------------------------------------------------------------
    def img2afc(self, reference, a, b):
        """Which of ``a``, ``b`` is more similar to ``reference`` (choice 0 or 1)."""
        if not _is_one_image(reference):
            _check_lengths("img2afc", reference, a, b)
            return self._judge_all("img2afc", [[x, y] for x, y in zip(a, b)], list(reference))
        return self._judge_all("img2afc", [[a, b]], [reference])[0]

    def it2afc(self, caption, images):
        """Which image fits ``caption`` best (two or more images)."""
        if not isinstance(caption, str):
            _check_lengths("it2afc", caption, images)
            return self._judge_all("it2afc", [_images(i) for i in images], list(caption))
        return self._judge_all("it2afc", [_images(images)], [caption])[0]

    def text2afc(self, image, captions):
        """Which caption fits ``image`` best (two or more captions)."""
        if not _is_one_image(image):
            _check_lengths("text2afc", image, captions)
            return self._judge_all("text2afc", [list(c) for c in captions], list(image))
        return self._judge_all("text2afc", [list(captions)], [image])[0]

    def quality(self, images, mode: str | None = None):
        """Per-image quality scores and the best image (``mode``: ``naive`` or ``clip-iqa``)."""
        return self.attribute(images, "quality", mode)

    def attribute(self, images, attribute: str, mode: str | None = None):
        """Per-image scores for ``brightness``, ``colorfulness``, ``contrast`` or ``sharpness`` (or
        ``quality``), and the image that has most of it."""
        mode = mode or self.quality_mode
        if mode not in scoring.QUALITY_MODES:
            raise ValueError(f"mode must be one of {scoring.QUALITY_MODES}, got {mode!r}")
        prompts = self._embed_texts(scoring.attribute_prompts(attribute))
        task = "iqa" if attribute == "quality" else "paa"
        embedded = self._embed_images(_images(images))
        return scoring.judge(task, embedded, prompts, logit_scale=self.encoder.logit_scale, modes=(mode,))

    def odd_one_out(self, images):
        """Which of three images is the odd one (outside the most similar pair)."""
        batch = images.ndim == 5 if isinstance(images, torch.Tensor) else not _is_one_image(images[0])
        triples = [_images(t) for t in images] if batch else [_images(images)]
        for triple in triples:
            if len(triple) != 3:
                raise ValueError(f"odd_one_out takes three images, got {len(triple)}")
        embedded = self._embed_images([im for t in triples for im in t])
        judged = [scoring.judge("ooo", embedded[3 * i : 3 * i + 3]) for i in range(len(triples))]
        return judged if batch else judged[0]

    def similarity(self, x, y):
        """Cosine similarity of ``x`` and ``y``, each an image or a text; for two lists, of each pair."""
        if isinstance(x, str) or _is_one_image(x):
            return self.similarity([x], [y])[0]
        n = _check_lengths("similarity", x, y)
        embedded = self._embed_mixed([*x, *y])  # one call: an image on both sides is encoded once
        return (embedded[:n] * embedded[n:]).sum(-1).tolist()

    # -- embedding -------------------------------------------------------------------------------
    def embed_images(self, images) -> torch.Tensor:
        """[n, d] L2-normalised embeddings."""
        return self._embed_images(_images(images))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._embed_texts(list(texts))

    def _judge_all(self, task: str, groups: list[list], references: list) -> list[Judgement]:
        """Judge each sample: its alternatives (a group) against its reference."""
        for alts in groups:
            if len(alts) < 2:
                raise ValueError(f"{task}: at least two alternatives per sample, got {len(alts)}")
        ref_kind, alt_kind = scoring.REFERENCE_AND_ALTERNATIVES[task]
        items = {"image": [], "text": []}  # one embedding call per kind: an image shared by both sides once
        items[ref_kind] += references
        start = len(items[alt_kind])
        items[alt_kind] += [x for alts in groups for x in alts]
        embedded = {"image": self._embed_images(items["image"]), "text": self._embed_texts(items["text"])}
        out = []
        for i, alts in enumerate(groups):
            ref = embedded[ref_kind][i : i + 1]
            out.append(scoring.judge(task, embedded[alt_kind][start : start + len(alts)], ref))
            start += len(alts)
        return out

    def _embed_mixed(self, items: list) -> torch.Tensor:
        is_text = [isinstance(x, str) and not os.path.isfile(x) for x in items]
        texts = [i for i, t in enumerate(is_text) if t]
        images = [i for i, t in enumerate(is_text) if not t]
        out = torch.empty(len(items), self._dim())
        if texts:
            out[texts] = self._embed_texts([items[i] for i in texts])
        if images:
            out[images] = self._embed_images([items[i] for i in images])
        return out

    def _dim(self) -> int:
        return self.encoder.embed_dim or self.encoder.encode_texts(["a"]).shape[1]

    def _embed_images(self, images: list) -> torch.Tensor:
        """Embeddings of ``images`` in order; each distinct image (by pixels) encoded once."""
        keys, distinct = [], {}
        for image in images:
            pil = to_pil(image)
            key = hashlib.sha1(pil.tobytes() + repr(pil.size).encode()).hexdigest()
            distinct.setdefault(key, pil)
            keys.append(key)
        order, features = list(distinct), {}
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc=f"{self.name} images", disable=len(batches) < 3):
            chunk = order[start : start + self.batch_size]
            features.update(zip(chunk, self.encoder.encode_images([distinct[k] for k in chunk])))
        return torch.stack([features[k] for k in keys]) if keys else torch.zeros(0, self._dim())

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"expected a text, got {type(t).__name__}")
        distinct = list(dict.fromkeys(texts))
        features = {}
        for start in range(0, len(distinct), self.batch_size):
            chunk = distinct[start : start + self.batch_size]
            features.update(zip(chunk, self.encoder.encode_texts(chunk)))
        return torch.stack([features[t] for t in texts]) if texts else torch.zeros(0, self._dim())
