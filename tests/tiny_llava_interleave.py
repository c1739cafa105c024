"""A tiny trainable LLaVA-Interleave base and a conversation data set with a planted rule, for the
LLaVA-NeXT trainer's tests, written offline.

``make_tiny_base(path)`` saves a random ``LlavaForConditionalGeneration`` + ``LlavaProcessor`` (the
llava-hf LLaVA-Interleave layout: a Qwen2 text model, a SigLIP vision tower, 28x28 images in 14x14
patches, so 4 tokens an image; one token per byte, see ``tests.tiny_llava``), not steered to any reply,
with the images-first chat template the llava-hf checkpoints ship (``chat_template="upstream"``): only
a trained folder given the in-order template shows lmms-eval's prompts with their images in place.

``write_planted_data(folder, n)`` writes ``n`` LLaVA conversation records with two images each and
the Table 7 PAA brightness question (``unisim_tasks.tasks.prompts``), whose answer is "A" when the
first image is the brighter one and "B" otherwise, so a model that learns the rule also answers the
``unisim_mini`` brightness sets. Each image is a coloured shape on a light background (as those sets
draw them) dimmed or brightened by ``ImageEnhance.Brightness``: one factor in [0.3, 0.6], the other in
[1.0, 1.8].
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

from tests.tiny_llava import make_tiny_llava_interleave
from unisim_tasks.tasks.prompts import render_prompt

PAA_BRIGHTNESS = {"task": "paa", "images": [None, None], "attribute": "brightness"}


def make_tiny_base(path: Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """A random tiny LLaVA-Interleave model folder to fine-tune (no reply steering)."""
    return make_tiny_llava_interleave(Path(path), seed=seed, hidden_size=hidden_size, chat_template="upstream", reply=None)


def planted_prompt() -> str:
    """The Table 7 PAA question for brightness, with its two ``<image>`` marks."""
    return render_prompt(PAA_BRIGHTNESS)


def _drawing(rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (64, 64), tuple(rng.randint(200, 255) for _ in range(3)))
    x, y, r = rng.randint(18, 46), rng.randint(18, 46), rng.randint(10, 17)
    colour = tuple(rng.randint(0, 255) for _ in range(3))
    draw = ImageDraw.Draw(img)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
    return img


def write_planted_data(folder: Path, n: int, *, seed: int = 0, name: str = "planted.json") -> tuple[Path, Path]:
    """``n`` records in ``folder/name``, images in ``folder/images``; returns (data path, image folder)."""
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    prompt = planted_prompt()
    records = []
    for i in range(n):
        first_brighter = rng.random() < 0.5
        bright, dark = rng.uniform(1.0, 1.8), rng.uniform(0.3, 0.6)
        paths = []
        for k, factor in enumerate((bright, dark) if first_brighter else (dark, bright)):
            rel = f"{seed}_{i}_{k}.png"
            ImageEnhance.Brightness(_drawing(rng)).enhance(factor).save(images / rel)
            paths.append(rel)
        records.append({
            "id": f"planted-{seed}-{i}",
            "image": paths,
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": "A" if first_brighter else "B"}],
        })  # fmt: skip
    data = folder / name
    data.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return data, images
