import csv
import json
from itertools import combinations
from pathlib import Path

import pytest

from tests.rawfix import color_of, load, pixel, prepare, write_image

MODELS = ("AttnGAN_normal", "DALLE2_normal", "glide_normal", "midjourney_lowstep", "sd1.5_highcorr")
PROMPTS = ["statue of a man", "a tray of sushi, anime style", "man lost in space", "a cosmic universe, top view"]
# (mos_quality, mos_align) per prompt and model; quality < 1.0 is filtered out of IT-2AFC (1.0 is kept)
SCORES = {
    0: [(2.5, 3.1), (0.6, 4.2), (3.0, 1.2), (1.0, 2.2), (4.1, 2.9)],
    1: [(1.9, 2.0), (2.2, 2.0), (0.9, 0.4), (2.8, 3.3), (2.8, 1.1)],  # an align tie and a quality tie
    2: [(3.3, 0.5), (0.2, 1.5), (1.7, 2.5), (2.4, 3.5), (3.9, 4.5)],
    3: [(1.2, 4.0), (2.0, 3.0), (2.6, 2.0), (3.1, 1.0), (0.4, 0.2)],
}
IDS = {p * 10 + m: (p, m) for p in SCORES for m in range(len(MODELS))}


def image_name(p, m):
    return f"{MODELS[m]}_{p:03d}.jpg"


def make_raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw" / "agiqa-3k"
    root.mkdir(parents=True)
    with open(root / "data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"])
        for p, prompt in enumerate(PROMPTS):
            adj = prompt.split(", ")[1] if ", " in prompt else ""
            for m, (quality, align) in enumerate(SCORES[p]):
                write_image(root / "images" / image_name(p, m), color_of(p * 10 + m))
                w.writerow([image_name(p, m), prompt, adj, "", "", quality, 0.5, align, 0.6])
        w.writerow(["sd1.5_normal_000.jpg", PROMPTS[0], "", "", "", "n/a", 0.5, 2.0, 0.6])  # malformed MOS
    return tmp_path / "raw"


def decode(img):
    px = pixel(img)  # JPEG shifts colours slightly: take the nearest fixture colour
    return IDS[min(IDS, key=lambda i: sum(abs(a - b) for a, b in zip(color_of(i), px)))]


def check(ds, manifest, *, task, score, min_quality):
    assert manifest["malformed_count"] == 1 and manifest["malformed"][0]["file"] == "data.csv"
    labels = set()
    for rec in ds:
        assert rec["task"] == task and rec["dataset"] == "agiqa3k" and rec["texts"] == []
        (p0, m0), (p1, m1) = map(decode, rec["images"])
        assert p0 == p1 and m0 != m1
        assert rec["ref_text"] == (PROMPTS[p0] if task == "it2afc" else None)
        s0, s1 = SCORES[p0][m0], SCORES[p0][m1]
        assert min(s0[0], s1[0]) >= min_quality and s0[score] != s1[score]
        assert rec["label"] == (0 if s0[score] > s1[score] else 1)
        meta = json.loads(rec["meta"])
        assert meta["images"] == [image_name(p0, m0), image_name(p0, m1)] and meta["mos_quality"] == [s0[0], s1[0]]
        labels.add(rec["label"])
    assert labels == {0, 1}
    assert len({decode(rec["images"][0])[0] for rec in list(ds)[:4]}) == 4  # round 0: one pair per prompt


def test_agiqa_it2afc_filters_low_quality_and_labels_the_better_aligned(tmp_path):
    assert prepare("--dataset", "agiqa3k", "--raw-dir", make_raw(tmp_path), "--data-dir", tmp_path / "d") == 0
    ds, manifest = load(tmp_path / "d", "it2afc_agiqa3k")
    # kept images per prompt: 4, 4, 4, 4 -> 4 x 6 pairs, minus prompt 1's align tie
    assert len(ds) == 23 and manifest["shortfall"] == 5000 - 23
    check(ds, manifest, task="it2afc", score=1, min_quality=1.0)


def test_agiqa_iqa_keeps_all_images_and_labels_the_higher_quality(tmp_path):
    assert prepare("--dataset", "agiqa3k", "--raw-dir", make_raw(tmp_path), "--data-dir", tmp_path / "d") == 0
    ds, manifest = load(tmp_path / "d", "iqa_agiqa3k")
    assert len(ds) == 4 * 10 - 1  # all pairs within each prompt, minus prompt 1's quality tie
    check(ds, manifest, task="iqa", score=0, min_quality=0.0)
    assert any(min(SCORES[p][m][0] for p, m in map(decode, rec["images"])) < 1.0 for rec in ds)


@pytest.mark.parametrize(
    "eval_set, column, score, min_quality",
    [("it2afc_agiqa3k", "mos_align", 1, 1.0), ("iqa_agiqa3k", "mos_quality", 0, 0.0)],
)
def test_agiqa_lists_the_skipped_ties_in_the_manifest(tmp_path, eval_set, column, score, min_quality):
    assert prepare("--dataset", "agiqa3k", "--raw-dir", make_raw(tmp_path), "--data-dir", tmp_path / "d") == 0
    ds, manifest = load(tmp_path / "d", eval_set)
    ties = [
        (f"agiqa3k/{image_name(p, m0)}-{image_name(p, m1)}", f"equal {column} ({s0[score]}): no answer")
        for p, scores in SCORES.items()
        for (m0, s0), (m1, s1) in combinations(enumerate(scores), 2)
        if min(s0[0], s1[0]) >= min_quality and s0[score] == s1[score]
    ]
    assert len(ties) == 1  # the fixture's one tie of each score
    assert [(s["item"], s["reason"]) for s in manifest["skipped"]] == ties and manifest["skipped_count"] == 1
    assert not {uid for uid, _ in ties} & set(ds["uid"])
