"""PIEAPP (Img-2AFC and IQA): pairwise preferences between distorted versions of a reference image.

Raw layout (the PieAPP release, as in the authors' ``pie-app.tar``): ``{split}_reference_list.txt``
(one reference file name a line, e.g. ``ref_161.png``), ``reference_images/<split>/ref_XXX.png``,
``distorted_images/<split>/ref_XXX/distort_XXX_*.png`` and
``labels/<split>/ref_XXX_pairwise_labels.csv`` with the columns ``ref. image, distorted image A,
distorted image B`` and ``preference for A`` (test) or ``raw preference for A, processed preference
for A`` (train; the processed one is used). ``test`` builds from the official test references,
``train`` from the official training references, so the two never share an image.

Sampling (from the labelled pairs): pairs whose preference for A is > 0.6 or < 0.4 and where
neither alternative is the reference itself.
- img2afc_pieapp: one sample per pair, (reference, A, B) in the release's order; label 0 when the
  preference for A is > 0.5, else 1. Pairs are taken in a seeded order keyed by the pair.
- iqa_pieapp: one sample per distinct (reference, distorted image) comparison among those pairs'
  alternatives (A and B), in a seeded order keyed by the comparison; label = the position of the
  reference (the undistorted image is the better one). The authors' code takes the reference
  against A and against B of every pair, so a distorted image that appears in many pairs recurs
  (that is how their Table 1 reaches 5000 test samples); here each comparison is drawn once and the
  manifest records the shortfall.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..builder import Builder, BuildContext, register
from ..schema import ImageRef, sample

_PREFERENCE = {"test": "preference for A", "train": "processed preference for A"}
_CONFIDENT = (0.4, 0.6)  # keep pairs whose preference for A lies outside this band


@dataclass(frozen=True)
class _Pair:
    reference: str  # reference stem, e.g. ref_161
    ref_image: str  # reference file name
    a: str
    b: str
    preference: float  # fraction of people who preferred A

    @property
    def uid(self) -> str:
        return f"pieapp/{self.reference}/{_stem(self.a)}-vs-{_stem(self.b)}"


@register
class PIEAPP(Builder):
    name = "pieapp"
    raw_folder = "pie-app"
    raw_folder_alternatives = ("pie_app",)  # the name the authors' loaders read
    archive = "pie-app.tar"
    layout = (
        "pie-app/  (or pie_app/)\n"
        "  test_reference_list.txt, train_reference_list.txt   reference file names, one a line\n"
        "  reference_images/<split>/ref_XXX.png\n"
        "  distorted_images/<split>/ref_XXX/distort_XXX_*.png\n"
        "  labels/<split>/ref_XXX_pairwise_labels.csv   columns ref. image, distorted image A,\n"
        "      distorted image B, preference for A (test) / processed preference for A (train)"
    )
    outputs = {
        "test": {"img2afc_pieapp": 3314, "iqa_pieapp": 5000},
        "train": {"img2afc_pieapp": 50500, "iqa_pieapp": 50500},
    }
    version = "2"  # 2: iqa_pieapp draws each comparison once

    def candidates(self, ctx: BuildContext, eval_set: str):
        pairs = _pairs(ctx)
        if eval_set == "img2afc_pieapp":
            yield from _img2afc(ctx, pairs)
        else:
            yield from _iqa(ctx, pairs)


def _img2afc(ctx: BuildContext, pairs: list[_Pair]):
    for pair in ctx.sampler.order(pairs, key=lambda p: p.uid):
        yield sample(
            uid=pair.uid,
            task="img2afc",
            dataset="pieapp",
            ref_image=_ref_image(ctx, pair),
            images=[_distorted(ctx, pair, pair.a), _distorted(ctx, pair, pair.b)],
            label=0 if pair.preference > 0.5 else 1,
            meta=_meta(pair),
        )


def _iqa(ctx: BuildContext, pairs: list[_Pair]):
    comparisons = {}  # uid -> (a pair holding the distorted image, that image): each comparison once
    for pair in pairs:
        for distorted in (pair.a, pair.b):
            comparisons.setdefault(f"pieapp/{pair.reference}/{_stem(distorted)}", (pair, distorted))
    for uid in ctx.sampler.order(comparisons):
        pair, distorted = comparisons[uid]
        images, label = ctx.sampler.orient(_ref_image(ctx, pair), _distorted(ctx, pair, distorted), uid)
        yield sample(
            uid=uid,
            task="iqa",
            dataset="pieapp",
            images=images,
            label=label,
            meta={"reference": pair.ref_image, "distorted": distorted},
        )


def _pairs(ctx: BuildContext) -> list[_Pair]:
    """The confident, reference-free labelled pairs of the split's references (deduplicated)."""
    split = ctx.split
    for folder in ("reference_images", "distorted_images", "labels"):
        ctx.raw.require(f"{folder}/{split}", "folder")
    references = [
        _stem(line.strip()) for line in ctx.raw.read_text(f"{split}_reference_list.txt").splitlines() if line.strip()
    ]
    pairs = {}
    for reference in references:
        labels = f"labels/{split}/{reference}_pairwise_labels.csv"
        if not ctx.raw.exists(labels):
            ctx.report.skip(reference, f"no {labels}")
            continue
        for pair in _read_pairs(ctx, labels, reference):
            if pair.ref_image in (pair.a, pair.b) or _CONFIDENT[0] <= pair.preference <= _CONFIDENT[1]:
                continue
            if pair.uid in pairs:
                ctx.report.skip(pair.uid, "pair listed twice")
                continue
            pairs[pair.uid] = pair
    return list(pairs.values())


def _read_pairs(ctx: BuildContext, labels: str, reference: str):
    column = _PREFERENCE[ctx.split]
    for line, row in enumerate(ctx.raw.read_csv(labels), start=2):
        try:
            names = row["ref. image"], row["distorted image A"], row["distorted image B"]
            pair = _Pair(reference, *names, float(row[column]))
        except (KeyError, ValueError) as e:
            ctx.report.bad_row(labels, line, f"unreadable row: {e!r}")
            continue
        if not 0.0 <= pair.preference <= 1.0:
            ctx.report.bad_row(labels, line, f"{column} {pair.preference} is not a fraction in [0, 1]")
            continue
        yield pair


def _ref_image(ctx: BuildContext, pair: _Pair) -> ImageRef:
    return ImageRef(f"reference_images/{ctx.split}/{pair.ref_image}")


def _distorted(ctx: BuildContext, pair: _Pair, name: str) -> ImageRef:
    return ImageRef(f"distorted_images/{ctx.split}/{pair.reference}/{name}")


def _meta(pair: _Pair) -> dict:
    return {"reference": pair.ref_image, "pair": [pair.a, pair.b], "preference_for_A": pair.preference}


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]
