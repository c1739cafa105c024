import json
from itertools import combinations
from pathlib import Path

import pytest

from tests.rawfix import color_of, load, pixel, prepare, run_cli, write_image, write_tarball

REFS = {"test": (161, 162), "train": (1, 2)}
DISTORTIONS = ("jpeg2000Compression_1", "softFocus_1", "poissonNoise_1", "superResPeleg_2")  # k = 1..4
PAIRS = list(combinations(range(1, 5), 2))
PREFERENCE = dict(zip(PAIRS, (0.9, 0.1, 0.5, 0.65, 0.3, 0.55)))  # 0.5 and 0.55 are not confident
KEPT = {pair: 0 if p > 0.5 else 1 for pair, p in PREFERENCE.items() if not 0.4 <= p <= 0.6}
ALL_REFS = REFS["test"] + REFS["train"]


def image_id(ref: int, k: int) -> int:
    """k = 0 for the reference image, 1..4 for its distortions."""
    return ALL_REFS.index(ref) * 5 + k


def dist_name(ref: int, k: int) -> str:
    return f"distort_{ref:03d}_{DISTORTIONS[k - 1]}.png"


HEADER = {
    "test": "ref. image, distorted image A, distorted image B, preference for A",
    "train": "ref. image, distorted image A, distorted image B, raw preference for A, processed preference for A",
}


def label_rows(split: str, ref: int) -> list[str]:
    ref_file = f"ref_{ref:03d}.png"

    def row(a: str, b: str, p) -> str:
        # train: the raw preference is the opposite one, so reading the wrong column flips every label
        prefs = [p] if split == "test" else [1 - p if isinstance(p, float) else p, p]
        return ", ".join([ref_file, a, b, *map(str, prefs)])

    rows = [HEADER[split]] + [row(dist_name(ref, a), dist_name(ref, b), p) for (a, b), p in PREFERENCE.items()]
    rows += [row(ref_file, dist_name(ref, k), 0.95) for k in (1, 2)]  # the reference as an alternative: dropped
    if ref == REFS[split][1]:
        rows.append(row(dist_name(ref, 1), dist_name(ref, 2), "n/a"))
    return rows


def make_raw(tmp_path: Path, folder: str = "pie-app") -> Path:
    root = tmp_path / "raw" / folder
    (root / "labels").mkdir(parents=True)
    for split, refs in REFS.items():
        (root / f"{split}_reference_list.txt").write_text("".join(f"ref_{r:03d}.png\n" for r in refs))
        (root / "labels" / split).mkdir()
        for ref in refs:
            stem = f"ref_{ref:03d}"
            write_image(root / "reference_images" / split / f"{stem}.png", color_of(image_id(ref, 0)))
            for k in range(1, 5):
                write_image(root / "distorted_images" / split / stem / dist_name(ref, k), color_of(image_id(ref, k)))
            labels = root / "labels" / split / f"{stem}_pairwise_labels.csv"
            labels.write_text("\n".join(label_rows(split, ref)) + "\n")
    return tmp_path / "raw"


def decode(img) -> tuple[int, int]:
    by_color = {color_of(image_id(r, k)): (r, k) for r in ALL_REFS for k in range(5)}
    return by_color[pixel(img)]


def check_img2afc(ds, refs):
    seen, labels = set(), set()
    for rec in ds:
        assert rec["task"] == "img2afc" and rec["dataset"] == "pieapp" and rec["texts"] == []
        ref, k = decode(rec["ref_image"])
        assert k == 0
        (r_a, a), (r_b, b) = map(decode, rec["images"])
        assert r_a == r_b == ref and ref in refs
        assert rec["label"] == KEPT[a, b]
        seen.add((ref, a, b))
        labels.add(rec["label"])
    assert seen == {(r, a, b) for r in refs for a, b in KEPT} and labels == {0, 1}


def check_iqa(ds, refs):
    distorted, labels = [], set()
    for rec in ds:
        assert rec["task"] == "iqa" and rec["dataset"] == "pieapp" and rec["ref_image"] is None
        decoded = [decode(img) for img in rec["images"]]
        assert decoded[rec["label"]][1] == 0, "the label points at the reference image"
        (r0, _), (r1, _) = decoded
        assert r0 == r1 and r0 in refs
        distorted.append(decoded[1 - rec["label"]])
        labels.add(rec["label"])
    # the reference against each distorted image of the kept pairs, each comparison once
    assert sorted(distorted) == sorted({(r, k) for r in refs for pair in KEPT for k in pair})
    assert labels == {0, 1} and len(set(ds["uid"])) == len(ds)


def test_pieapp_test_sets_keep_confident_pairs_without_the_reference(tmp_path):
    raw = make_raw(tmp_path)
    assert prepare("--dataset", "pieapp", "--raw-dir", raw, "--data-dir", tmp_path / "d") == 0
    afc, afc_manifest = load(tmp_path / "d", "img2afc_pieapp")
    iqa, iqa_manifest = load(tmp_path / "d", "iqa_pieapp")
    assert len(afc) == 2 * len(KEPT) and afc_manifest["shortfall"] == 3314 - len(afc)
    assert iqa_manifest["shortfall"] == 5000 - len(iqa)
    check_img2afc(afc, REFS["test"])
    check_iqa(iqa, REFS["test"])
    for manifest in (afc_manifest, iqa_manifest):
        assert manifest["malformed_count"] == 1
        assert manifest["malformed"][0]["file"] == "labels/test/ref_162_pairwise_labels.csv"
        assert "test_reference_list.txt" in manifest["raw_files"]
        assert not any("train" in f for f in manifest["raw_files"])


def test_pieapp_train_uses_training_references_and_processed_preference(tmp_path):
    raw = make_raw(tmp_path)
    assert prepare("--dataset", "pieapp", "--split", "train", "--raw-dir", raw, "--data-dir", tmp_path / "d") == 0
    afc, manifest = load(tmp_path / "d", "img2afc_pieapp", "train")
    iqa, _ = load(tmp_path / "d", "iqa_pieapp", "train")
    assert manifest["default_num_samples"] == 50500
    check_img2afc(afc, REFS["train"])
    check_iqa(iqa, REFS["train"])


def test_pieapp_iqa_draws_each_comparison_once_and_records_the_shortfall(tmp_path):
    raw = make_raw(tmp_path)
    compared = sorted({k for pair in KEPT for k in pair})  # the distorted images of the kept pairs
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert prepare("--dataset", "pieapp", "--raw-dir", raw, "--data-dir", tmp_path / name, "--seed", seed) == 0
        runs[name] = load(tmp_path / name, "iqa_pieapp")
    iqa, manifest = runs["a"]
    assert len(iqa) == len(REFS["test"]) * len(compared) and manifest["shortfall"] == 5000 - len(iqa)
    assert manifest["builder_version"] == "2"
    for rec in iqa:
        ref, k = decode(rec["images"][1 - rec["label"]])
        assert rec["uid"] == f"pieapp/ref_{ref:03d}/{dist_name(ref, k)[:-4]}"
        assert json.loads(rec["meta"]) == {"reference": f"ref_{ref:03d}.png", "distorted": dist_name(ref, k)}
    (b, manifest_b), (c, _) = runs["b"], runs["c"]
    assert manifest_b == manifest and [(r["uid"], r["label"]) for r in b] == [(r["uid"], r["label"]) for r in iqa]
    assert c["uid"] != iqa["uid"] and sorted(c["uid"]) == sorted(iqa["uid"])


@pytest.mark.parametrize("given", ["root", "tarball", "all"])
def test_pieapp_folder_may_be_named_pie_app_as_the_authors_loaders_read_it(tmp_path, given):
    reference = tmp_path / "reference"
    assert prepare("--dataset", "pieapp", "--raw-dir", make_raw(reference), "--data-dir", reference / "d") == 0
    raw = make_raw(tmp_path, folder="pie_app")
    if given == "tarball":
        raw = write_tarball(raw / "pie_app", tmp_path / "pie-app.tar")
    done = run_cli("prepare", "--dataset", "all" if given == "all" else "pieapp", "--raw-dir", raw,
                   "--data-dir", tmp_path / "d")
    assert done.returncode == 0, done.stderr
    assert "img2afc_pieapp/test: built" in done.stdout and "iqa_pieapp/test: built" in done.stdout
    for eval_set in ("img2afc_pieapp", "iqa_pieapp"):
        (ds, manifest), (same, same_manifest) = (load(d, eval_set) for d in (tmp_path / "d", reference / "d"))
        assert ds["uid"] == same["uid"] and manifest == same_manifest  # the same sets as from pie-app/
