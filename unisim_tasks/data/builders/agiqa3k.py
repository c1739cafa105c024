"""AGIQA-3K: two images generated from one prompt; IT-2AFC asks which is better aligned, IQA which
has the higher perceptual quality.

Raw layout (authors' ``agiqa-3k.tar``; the publisher's ``data.csv`` plus the images of its
``AGIQA-3K.zip``): ``agiqa-3k/data.csv`` with columns ``name, prompt, adj1, adj2, style,
mos_quality, std_quality, mos_align, std_align`` (MOS normalised to 0-5) and the images in
``agiqa-3k/images/<name>``.

Both evaluation sets pair two images of the same prompt (as the authors' loader does for both):
- ``it2afc_agiqa3k``: images with ``mos_quality < 1.0`` are filtered out first (paper, App. B: "we
  first filter out images with low perceptual quality scores"; 1.0 is the authors'
  ``min_mos_quality``, which their code applies to the alignment MOS instead); label = the higher
  ``mos_align``; the prompt is the reference text.
- ``iqa_agiqa3k``: all images; label = the higher ``mos_quality``.
Pairs of equal MOS give no sample (they are listed as skipped in the manifest). Every other pair
of a prompt is a candidate, drawn as the authors' loader draws them (one pair per prompt per pass
over the prompts) but without repeats and from the seed (``Sampler.interleave``).
"""

from __future__ import annotations

import math
from collections import defaultdict

from ..builder import Builder, BuildContext, register
from ..schema import ImageRef, sample

MIN_QUALITY = 1.0  # IT-2AFC keeps images with mos_quality >= MIN_QUALITY
_SETS = {"it2afc_agiqa3k": ("it2afc", "mos_align"), "iqa_agiqa3k": ("iqa", "mos_quality")}


@register
class AGIQA3K(Builder):
    name = "agiqa3k"
    raw_folder = "agiqa-3k"
    archive = "agiqa-3k.tar"
    layout = (
        "agiqa-3k/\n"
        "  data.csv        columns name, prompt, adj1, adj2, style, mos_quality, std_quality, mos_align, std_align\n"
        "  images/<name>   the generated images"
    )
    outputs = {"test": {"it2afc_agiqa3k": 5000, "iqa_agiqa3k": 5000}}

    def candidates(self, ctx: BuildContext, eval_set: str):
        ctx.raw.require("images", "folder")
        task, score = _SETS[eval_set]
        by_prompt = defaultdict(list)
        for row in _rows(ctx):
            if task == "iqa" or row["mos_quality"] >= MIN_QUALITY:
                by_prompt[row["prompt"]].append(row)
        pairs = defaultdict(list)
        for prompt, rows in by_prompt.items():
            for n, a in enumerate(rows):
                for b in rows[n + 1 :]:
                    if a[score] == b[score]:
                        ctx.report.skip(_uid(a, b), f"equal {score} ({a[score]}): no answer")
                    else:
                        pairs[prompt].append((a, b))
        for a, b in ctx.sampler.interleave(pairs, key=lambda p: f"{p[0]['name']}-{p[1]['name']}"):
            uid = _uid(a, b)
            better, worse = (a, b) if a[score] > b[score] else (b, a)
            images, label = ctx.sampler.orient(
                ImageRef(f"images/{better['name']}"), ImageRef(f"images/{worse['name']}"), uid
            )
            order = [better, worse] if label == 0 else [worse, better]
            yield sample(
                uid=uid,
                task=task,
                dataset=self.name,
                ref_text=a["prompt"] if task == "it2afc" else None,
                images=images,
                label=label,
                meta={
                    "prompt": a["prompt"],
                    "images": [r["name"] for r in order],
                    "mos_quality": [r["mos_quality"] for r in order],
                    "mos_align": [r["mos_align"] for r in order],
                },
            )


def _uid(a: dict, b: dict) -> str:
    return f"agiqa3k/{a['name']}-{b['name']}"


def _rows(ctx: BuildContext) -> list[dict]:
    """The rows of ``data.csv`` with parsed MOS; malformed rows are reported and left out."""
    rows = []
    for line, row in enumerate(ctx.raw.read_csv("data.csv"), start=2):
        if not row.get("name") or not row.get("prompt"):
            ctx.report.bad_row("data.csv", line, "missing name or prompt")
            continue
        try:
            mos = {k: float(row.get(k) or "nan") for k in ("mos_quality", "mos_align")}
        except ValueError:
            mos = {}
        if len(mos) != 2 or not all(map(math.isfinite, mos.values())):
            scores = f"mos_quality {row.get('mos_quality')!r}, mos_align {row.get('mos_align')!r}"
            ctx.report.bad_row("data.csv", line, f"{scores}: not numbers")
            continue
        rows.append({"name": row["name"], "prompt": row["prompt"], **mos})
    return rows
