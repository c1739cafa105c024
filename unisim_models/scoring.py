"""How an encoder answers each UniSim-Bench task from embeddings (cosine similarities).

Img-2AFC: the alternative most similar to the reference. IT-2AFC: the image most similar to the
caption. Text-2AFC: the caption most similar to the image. IQA / PAA: ``naive`` (similarity to a
reference prompt) or ``clip-iqa`` (softmax over an antonym pair, the weight of the positive one).
OOO: the image outside the most similar pair. IR: the gallery sorted by similarity to the query.
"""

from __future__ import annotations

import torch

IQA_MODES = ("naive", "clip-iqa", "both")
# The paper's reference prompts (App. C) for the naive approach, per IQA / PAA attribute.
NAIVE_PROMPTS = {
    "quality": "A high quality photo.",
    "brightness": "A bright photo.",
    "colorfulness": "A very colorful photo.",
    "contrast": "A high contrast photo.",
    "sharpness": "A very sharp photo",
}
# CLIP-IQA antonym pairs (Wang et al., 2023) as the paper lists them.
ANTONYM_PROMPTS = {
    "quality": ("Good photo.", "Bad photo."),
    "brightness": ("Bright photo.", "Dark photo."),
    "colorfulness": ("Colorful photo.", "Dull photo"),
    "contrast": ("High contrast photo.", "Low contrast photo."),
    "sharpness": ("Sharp photo.", "Blurry photo."),
}


def attribute_of(doc: dict) -> str:
    return doc.get("attribute") or "quality"


def prompts_for(doc: dict) -> list[str]:
    """The text prompts an IQA / PAA sample is scored against."""
    attribute = attribute_of(doc)
    return [NAIVE_PROMPTS[attribute], *ANTONYM_PROMPTS[attribute]]


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of L2-normalised rows: [len(a), len(b)]."""
    return a @ b.T


def quality_scores(images: torch.Tensor, prompts: torch.Tensor, logit_scale: float) -> dict[str, list[float]]:
    """Per image: ``naive``, the similarity to the reference prompt; ``clip-iqa``, the softmax weight
    of the positive prompt; ``clip-iqa-logit``, its log-odds, ``logit_scale * (pos - neg)``.

    At CLIP's scale (100) the softmax saturates to 1.0 for margins of a few tenths, even in float64,
    so images are ranked by the log-odds (same order, no ties by rounding); the weight is for reading.
    """
    naive, positive, negative = cos(images.double(), prompts.double()).T
    log_odds = logit_scale * (positive - negative)
    return {"naive": naive.tolist(), "clip-iqa": torch.sigmoid(log_odds).tolist(), "clip-iqa-logit": log_odds.tolist()}


def quality_choice(scores: dict[str, list[float]], mode: str) -> int:
    """The alternative a quality mode picks from ``quality_scores``."""
    return argmax(scores["clip-iqa-logit" if mode == "clip-iqa" else mode])


def odd_one_out(images: torch.Tensor) -> tuple[int, list[float]]:
    """The odd image (outside the most similar pair) and the pair similarities (01, 02, 12)."""
    return odd_one_out_by(cos(images, images))


def odd_one_out_by(sims) -> tuple[int, list[float]]:
    """``odd_one_out`` from a 3 x 3 similarity matrix (any similarity, larger = more alike)."""
    pairs = [(0, 1), (0, 2), (1, 2)]
    values = [float(sims[i, j]) for i, j in pairs]
    i, j = pairs[max(range(3), key=values.__getitem__)]
    return ({0, 1, 2} - {i, j}).pop(), values


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def ranking(similarities) -> list[int]:
    """Gallery indices, most similar first (ties keep gallery order)."""
    return torch.argsort(torch.as_tensor(similarities), descending=True, stable=True).tolist()
