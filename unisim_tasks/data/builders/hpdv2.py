"""HPDv2 (IT-2AFC, and IT-NAFC): 2 (N) images generated from one prompt; the one humans ranked best is the answer.

Raw layout (authors' ``hpdv2.tar``, = the HF dataset ``ymhao/HPDv2`` with its tarballs extracted):
``hpdv2/test.json`` is a list of ``{prompt, image_path: [...], rank: [...], raw_annotations}`` (one
entry per prompt; rank 1 = best) with the images in ``hpdv2/test/``; ``hpdv2/train.json`` is a list
of ``{prompt, image_path (the HF card calls it file_path): [a, b], human_preference: [0, 1] or
[1, 0]}`` with the images in ``hpdv2/train/``.

Test, ``it2afc_hpdv2``: every pair of images of an entry with two distinct ranks is a candidate
(label = the lower rank; pairs of equal rank are skipped, listed in the manifest). Candidates are
drawn the way the authors' loader draws them, one pair per prompt per pass over the prompts, but
without repeats and from the seed: each prompt's pairs are put in seeded order, and round r takes
the r-th pair of every prompt, prompts in seeded order.
Test, ``it2afc_hpdv2_nafc`` (the paper's Fig. 4, N-alternative IT-AFC; not in the authors' code):
the same draw over every N images of an entry with N distinct ranks (N = the ``num_alternatives``
parameter, default 4), the N images in seeded order, label = the best-ranked one. Entries with
fewer than N distinct ranks among their usable images, and sets with a tied rank, are skipped
(listed in the manifest).
Train: each annotated pair is one sample (the official split, so no image is shared with the
test set), in seeded order; label = the preferred image.
Both splits: the four images known to be corrupt in the release are excluded (listed as skipped
in the manifest); any other unreadable image skips the samples that use it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from pathlib import PurePosixPath

from ..builder import Builder, BuildContext, register
from ..schema import ImageRef, sample

KNOWN_CORRUPT = frozenset({"00006811.jpg", "00168743.jpg", "00331911.jpg", "00310087.jpg"})
NAFC = "it2afc_hpdv2_nafc"


@register
class HPDv2(Builder):
    name = "hpdv2"
    raw_folder = "hpdv2"
    archive = "hpdv2.tar"
    layout = (
        "hpdv2/\n"
        "  test.json    [{prompt, image_path: [file, ...], rank: [int, ...], raw_annotations}, ...]\n"
        "  test/        the test images (file names as in test.json)\n"
        "  train.json   [{prompt, image_path (or file_path): [a, b], human_preference: [0/1, 0/1]}, ...]\n"
        "  train/       the training images"
    )
    outputs = {"test": {"it2afc_hpdv2": 5000, NAFC: 5000}, "train": {"it2afc_hpdv2": 645100}}
    params_accepted = {NAFC: {"num_alternatives": 4}}

    def candidates(self, ctx: BuildContext, eval_set: str):
        ctx.raw.require(ctx.split, "folder")
        entries = ctx.raw.read_json(f"{ctx.split}.json")
        if ctx.split == "train":
            return self._preference_pairs(ctx, entries)
        if eval_set == NAFC:
            n = ctx.params["num_alternatives"]
            if n < 2:
                raise ValueError(f"{NAFC}: num_alternatives must be at least 2, not {n}")
            return self._ranked_sets(ctx, entries, n)
        return self._ranked_pairs(ctx, entries)

    def _ranked_pairs(self, ctx: BuildContext, entries: list):
        for prompt, (a, b), ranks in _ranked_draw(ctx, entries, 2):
            better, worse = sorted((a, b), key=ranks.get)
            yield self._sample(ctx, _test_uid((a, b)), prompt, better, worse, "ranks", ranks)

    def _ranked_sets(self, ctx: BuildContext, entries: list, n: int):
        for prompt, images, ranks in _ranked_draw(ctx, entries, n):
            uid = _test_uid(images)
            order = ctx.sampler.order(images, key=lambda p: f"{uid}/{p}")
            yield sample(
                uid=uid,
                task="it2afc",
                dataset=self.name,
                ref_text=prompt,
                images=[ImageRef(f"test/{p}") for p in order],
                label=order.index(min(order, key=ranks.get)),
                meta={"images": order, "ranks": [ranks[p] for p in order], "num_alternatives": n},
            )

    def _preference_pairs(self, ctx: BuildContext, entries: list):
        seen = Counter()
        pairs = []  # (uid, prompt, preferred, other)
        for i, entry in enumerate(entries):
            images = _entry_images(ctx, "train.json", i, entry, "human_preference")
            if images is None:
                continue
            prefs = entry["human_preference"]
            if len(images) != 2 or sorted(prefs) != [0, 1]:
                ctx.report.bad_row("train.json", i, f"not a pair with exactly one preferred image: {prefs!r}")
                continue
            key = f"hpdv2/train/{images[0]}-{images[1]}"
            uid = key if not seen[key] else f"{key}#{seen[key]}"  # the same pair can be annotated more than once
            seen[key] += 1
            if all(_usable(ctx, p, uid) for p in images):
                winner = prefs.index(1)
                pairs.append((uid, entry["prompt"], images[winner], images[1 - winner]))
        for uid, prompt, preferred, other in ctx.sampler.order(pairs, key=lambda p: p[0]):
            yield self._sample(ctx, uid, prompt, preferred, other, "human_preference", {preferred: 1, other: 0})

    def _sample(self, ctx: BuildContext, uid: str, prompt: str, better: str, worse: str, field: str, scores: dict):
        images, label = ctx.sampler.orient(ImageRef(f"{ctx.split}/{better}"), ImageRef(f"{ctx.split}/{worse}"), uid)
        order = [better, worse] if label == 0 else [worse, better]
        return sample(
            uid=uid,
            task="it2afc",
            dataset=self.name,
            ref_text=prompt,
            images=images,
            label=label,
            meta={"images": order, field: [scores[p] for p in order]},
        )


def _ranked_draw(ctx: BuildContext, entries: list, n: int):
    """``(prompt, n images in entry order, {image: rank})`` for every n usable images of one test entry
    with n distinct ranks, one set per prompt per round (see the module docstring)."""
    by_prompt = defaultdict(list)
    for i, entry in enumerate(entries):
        images = _entry_images(ctx, "test.json", i, entry, "rank")
        if images is None:
            continue
        ranks = {p: r for p, r in zip(images, entry["rank"]) if _usable(ctx, p)}
        if len(set(ranks.values())) < n:
            ctx.report.skip(entry["prompt"], f"fewer than {n} distinct ranks among its usable images")
            continue
        for c in combinations([p for p in images if p in ranks], n):
            if len({ranks[p] for p in c}) == n:
                by_prompt[entry["prompt"]].append((entry["prompt"], c, ranks))
            else:
                ctx.report.skip(_test_uid(c), f"tied ranks {[ranks[p] for p in c]}: no answer")
    return ctx.sampler.interleave(by_prompt, key=lambda c: "-".join(c[1]))


def _test_uid(images) -> str:
    return "hpdv2/test/" + "-".join(images)


def _entry_images(ctx: BuildContext, file: str, i: int, entry, labels: str) -> list[str] | None:
    """The entry's image paths, or ``None`` (reported) if the entry is malformed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str):
        ctx.report.bad_row(file, i, "entry without a prompt")
        return None
    images = entry.get("image_path", entry.get("file_path"))
    values = entry.get(labels)
    if not isinstance(images, list) or not isinstance(values, list) or len(images) != len(values):
        ctx.report.bad_row(file, i, f"image_path and {labels} are not lists of equal length")
        return None
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not all(isinstance(p, str) for p in images) or not numbers:
        ctx.report.bad_row(file, i, f"image paths must be strings and {labels} numbers")
        return None
    return images


def _usable(ctx: BuildContext, path: str, item: str | None = None) -> bool:
    """False (and reported) for the release's known corrupt images."""
    if PurePosixPath(path).name in KNOWN_CORRUPT:
        ctx.report.skip(item or f"{ctx.split}/{path}", f"{path}: known corrupt image of the HPDv2 release")
        return False
    return True
