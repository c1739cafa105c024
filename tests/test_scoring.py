"""The per-task scoring rules on hand-made embeddings."""

import math

import pytest
import torch

from unisim_models import scoring


def unit(*values):
    v = torch.tensor(values, dtype=torch.float32)
    return v / v.norm()


def image_with_margin(margin):
    """A unit vector whose cosine to e0 minus its cosine to e1 is ``margin``: 0.5 + m/2, 0.5 - m/2, rest."""
    a, b = 0.5 + margin / 2, 0.5 - margin / 2
    return torch.tensor([a, b, math.sqrt(1 - a * a - b * b), 0.0])


def test_clip_iqa_keeps_the_order_of_near_saturated_margins():
    prompts = torch.stack([unit(0, 0, 0, 1), unit(1, 0, 0, 0), unit(0, 1, 0, 0)])  # naive, positive, negative
    images = torch.stack([image_with_margin(0.2), image_with_margin(0.3)])
    scores = scoring.quality_scores(images, prompts, logit_scale=100.0)
    # float32 softmax at scale 100 gives both 1.0: the choice must not fall back to the first image
    naive_softmax = torch.softmax(100.0 * (images @ prompts[1:].T), dim=1)[:, 0]
    assert naive_softmax[0] == naive_softmax[1] == 1.0
    assert scoring.quality_choice(scores, "clip-iqa") == 1
    assert scores["clip-iqa-logit"] == pytest.approx([20.0, 30.0], abs=1e-4)
    assert all(0.99 < p <= 1.0 for p in scores["clip-iqa"])  # readable weights beside the log-odds


def test_clip_iqa_order_holds_for_margins_beyond_float64_saturation():
    prompts = torch.stack([unit(0, 0, 0, 1), unit(1, 0, 0, 0), unit(0, 1, 0, 0)])
    images = torch.stack([image_with_margin(0.6), image_with_margin(0.5)])
    scores = scoring.quality_scores(images, prompts, logit_scale=100.0)
    assert scores["clip-iqa"] == [1.0, 1.0]  # sigmoid(60), sigmoid(50) round to 1.0 even in float64
    assert scoring.quality_choice(scores, "clip-iqa") == 0


def test_naive_quality_choice_is_the_most_similar_to_the_reference_prompt():
    prompts = torch.stack([unit(0, 0, 0, 1), unit(1, 0, 0, 0), unit(0, 1, 0, 0)])
    images = torch.stack([unit(0, 0, 1, 0.2), unit(0, 0, 1, 0.9)])
    assert scoring.quality_choice(scoring.quality_scores(images, prompts, 100.0), "naive") == 1

