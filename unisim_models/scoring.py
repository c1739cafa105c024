"""How an encoder answers each UniSim-Bench task from embeddings (cosine similarities).

Img-2AFC: the alternative most similar to the reference. IT-2AFC: the image most similar to the
caption. Text-2AFC: the caption most similar to the image. IQA / PAA: ``naive`` (similarity to a
reference prompt) or ``clip-iqa`` (softmax over an antonym pair, the weight of the positive one).
OOO: the image outside the most similar pair. IR: the gallery sorted by similarity to the query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

IQA_MODES = ("naive", "clip-iqa", "both")
QUALITY_MODES = ("naive", "clip-iqa")
# What each task compares: (reference, alternatives) as "image" / "text" embeddings. IQA / PAA's
# reference is the prompt triple of ``prompts_for`` (naive, positive, negative); OOO has none.
REFERENCE_AND_ALTERNATIVES = {
    "img2afc": ("image", "image"),
    "it2afc": ("text", "image"),
    "text2afc": ("image", "text"),
    "iqa": ("text", "image"),
    "paa": ("text", "image"),
    "ooo": (None, "image"),
}
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
    return attribute_prompts(attribute_of(doc))


def attribute_prompts(attribute: str) -> list[str]:
    """The naive prompt and the CLIP-IQA antonym pair of ``"quality"`` or a PAA attribute."""
    if attribute not in NAIVE_PROMPTS:
        raise ValueError(f"unknown attribute {attribute!r}; one of {', '.join(NAIVE_PROMPTS)}")
    return [NAIVE_PROMPTS[attribute], *ANTONYM_PROMPTS[attribute]]


@dataclass
class Judgement:
    """How a model decided one sample: ``choice`` indexes the alternatives (None: a generative
    model's answer that names none); ``scores`` are the numbers it chose by, per name."""

    choice: int | None
    scores: dict[str, list[float]] = field(default_factory=dict)
    choices: dict[str, int] = field(default_factory=dict)  # IQA / PAA: the choice of each mode
    response: str | None = None  # a generative model's text


def judge(
    task: str, alternatives: torch.Tensor, reference: torch.Tensor | None = None, *,
    logit_scale: float = 100.0, modes: tuple[str, ...] = ("naive",),
) -> Judgement:
    """An encoder's decision from embeddings, per ``REFERENCE_AND_ALTERNATIVES``: the alternatives'
    rows, and the reference's (one row; for IQA / PAA the three rows of ``attribute_prompts``).
    IQA / PAA: ``choice`` is the first of ``modes``; ``choices`` holds each mode's."""
    if task not in REFERENCE_AND_ALTERNATIVES:
        raise ValueError(f"no encoder rule for task {task!r}; one of {', '.join(REFERENCE_AND_ALTERNATIVES)}")
    if task == "ooo":
        odd, pair_sims = odd_one_out(alternatives)
        return Judgement(odd, {"pair_similarities": pair_sims})
    if task in ("iqa", "paa"):
        scores = quality_scores(alternatives, reference, logit_scale)
        choices = {m: quality_choice(scores, m) for m in modes}
        if "clip-iqa" not in modes:
            del scores["clip-iqa"], scores["clip-iqa-logit"]
        return Judgement(choices[modes[0]], scores, choices)
    similarity = cos(reference, alternatives)[0].tolist()
    return Judgement(argmax(similarity), {"similarity": similarity})


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
