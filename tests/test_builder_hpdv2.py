import json
from itertools import combinations
from pathlib import Path

import pytest

from tests.rawfix import color_of, load, pixel, prepare, write_corrupt, write_image

# test: prompt -> ranks of its images (rank 1 = best); image names are numbered like the release's
TEST_RANKS = {p: [(p + k) % 4 + 1 for k in range(4)] for p in range(6)}
TEST_RANKS[6] = [1, 2, 2]  # a tie: that pair gives no sample
KNOWN_CORRUPT, OTHER_CORRUPT = "00006811.jpg", "00000180.jpg"  # the worst image of prompt 7 / prompt 8
TEST_RANKS[7] = TEST_RANKS[8] = [3, 1, 2]
TRAIN_PAIRS = 12


def eval_name(p, k):
    if p == 7 and k == 0:
        return KNOWN_CORRUPT
    return f"{p * 10 + k + 100:08d}.jpg"


def train_name(i, k):
    return "00168743.jpg" if (i, k) == (TRAIN_PAIRS, 1) else f"{500000 + i * 2 + k:08d}.jpg"


def eval_entries():
    return [
        {
            "prompt": f"a cat number {p}",
            "image_path": [eval_name(p, k) for k in range(len(ranks))],
            "rank": ranks,
            "raw_annotations": [{"rank": ranks, "user_hash": "ab12"}],
        }
        for p, ranks in TEST_RANKS.items()
    ]


def train_entries():
    entries = [
        {
            "human_preference": [1, 0] if i % 3 else [0, 1],
            "prompt": f"a dog number {i}",
            "image_path": [train_name(i, 0), train_name(i, 1)],
            "user_hash": "cd34",
        }
        for i in range(TRAIN_PAIRS + 1)  # the last one holds a known corrupt image
    ]
    entries[5] = {
        "human_preference": entries[5]["human_preference"],
        "prompt": entries[5]["prompt"],
        "file_path": entries[5]["image_path"],
    }  # the key the HF card documents
    entries.append(dict(entries[2], human_preference=[1, 0], user_hash="ef56"))  # same pair, second annotator
    return entries


def make_raw(tmp_path: Path, corrupt: bool = True) -> Path:
    root = tmp_path / "raw" / "hpdv2"
    test, train = eval_entries(), train_entries()
    for entry in test:
        for name in entry["image_path"]:
            write_image(root / "test" / name, color_of(int(name[:-4]) - 100))
    for entry in train:
        for name in entry.get("image_path", entry.get("file_path")):
            write_image(root / "train" / name, color_of(int(name[:-4]) - 500000 + 100))
    if corrupt:
        write_corrupt(root / "test" / KNOWN_CORRUPT)
        write_corrupt(root / "test" / OTHER_CORRUPT)
        write_corrupt(root / "train" / "00168743.jpg")
    else:  # no corrupt files at all: prompts 7 and 8 dropped from the release
        test = test[:7]
    test.append({"prompt": "malformed", "image_path": ["x.jpg", "y.jpg"], "rank": [1]})
    train.append({"human_preference": [1, 1], "prompt": "malformed", "image_path": ["x.jpg", "y.jpg"]})
    (root / "test.json").write_text(json.dumps(test))
    (root / "train.json").write_text(json.dumps(train))
    return tmp_path / "raw"


def nearest(img, ids):
    """The fixture id whose colour is closest to the image's (JPEG shifts colours slightly)."""
    px = pixel(img)
    return min(ids, key=lambda i: sum(abs(a - b) for a, b in zip(color_of(i), px)))


TEST_IDS = {p * 10 + k: (p, k) for p, ranks in TEST_RANKS.items() for k in range(len(ranks))}
TRAIN_IDS = {i * 2 + k + 100: (i, k) for i in range(TRAIN_PAIRS + 1) for k in range(2)}


def decode_test(img):
    return TEST_IDS[nearest(img, list(TEST_IDS) + list(TRAIN_IDS))]


def build(tmp_path, raw, name, *args):
    assert prepare("--dataset", "hpdv2", "--raw-dir", raw, "--data-dir", tmp_path / name, *args) == 0
    split = "train" if "train" in args else "test"
    return load(tmp_path / name, "it2afc_hpdv2", split)


def test_hpdv2_test_labels_pick_the_better_rank_and_skip_corrupt_images(tmp_path):
    ds, manifest = build(tmp_path, make_raw(tmp_path), "d")
    # 6 prompts x C(4,2) + prompt 6 without its tie + prompt 7 without its known corrupt image (1 pair)
    # + prompt 8's 3 pairs, of which the 2 using the unreadable image are skipped when written
    assert len(ds) == 36 + 2 + 1 + 1 and manifest["shortfall"] == 5000 - 40
    assert manifest["malformed_count"] == 1 and manifest["malformed"][0]["file"] == "test.json"
    skipped = manifest["skipped"]
    assert {s["item"] for s in skipped if "known corrupt" in s["reason"]} == {f"test/{KNOWN_CORRUPT}"}
    assert sum(OTHER_CORRUPT in s["item"] for s in skipped) == 2 and manifest["skipped_count"] == 3 + 1  # + the tie
    assert f"test/{KNOWN_CORRUPT}" not in manifest["raw_files"]
    labels = set()
    for rec in ds:
        assert rec["task"] == "it2afc" and rec["dataset"] == "hpdv2" and rec["uid"].startswith("hpdv2/test/")
        (p0, k0), (p1, k1) = map(decode_test, rec["images"])
        assert p0 == p1 and k0 != k1 and rec["ref_text"] == f"a cat number {p0}"
        ranks = TEST_RANKS[p0]
        assert ranks[k0] != ranks[k1] and rec["label"] == (0 if ranks[k0] < ranks[k1] else 1)
        meta = {"images": [eval_name(p0, k0), eval_name(p0, k1)], "ranks": [ranks[k0], ranks[k1]]}
        assert json.loads(rec["meta"]) == meta
        labels.add(rec["label"])
    assert labels == {0, 1}


def test_hpdv2_test_draws_one_pair_per_prompt_per_round(tmp_path):
    ds, _ = build(tmp_path, make_raw(tmp_path, corrupt=False), "d")
    prompts = [decode_test(rec["images"][0])[0] for rec in ds]
    assert len(ds) == 38 and sorted(prompts[:7]) == sorted(prompts[7:14]) == list(range(7))  # rounds 0, 1
    assert sorted(prompts[14:20]) == list(range(6))  # round 2: prompt 6 has only two pairs


def test_hpdv2_train_uses_the_preference_and_shares_nothing_with_test(tmp_path):
    raw = make_raw(tmp_path)
    test, _ = build(tmp_path, raw, "d")
    train, manifest = build(tmp_path, raw, "d", "--split", "train")
    assert len(train) == TRAIN_PAIRS + 1 and manifest["shortfall"] == 645100 - 13
    assert manifest["malformed_count"] == 1 and manifest["malformed"][0]["file"] == "train.json"
    assert [s["item"] for s in manifest["skipped"]] == [f"hpdv2/train/{train_name(TRAIN_PAIRS, 0)}-00168743.jpg"]
    uids = [rec["uid"] for rec in train]
    assert len(set(uids)) == len(uids) and f"hpdv2/train/{train_name(2, 0)}-{train_name(2, 1)}#1" in uids
    labels = set()
    for rec in train:
        (i0, k0), (i1, _) = (TRAIN_IDS[nearest(im, list(TRAIN_IDS) + list(TEST_IDS))] for im in rec["images"])
        assert i0 == i1 and rec["ref_text"] == f"a dog number {i0}"
        duplicate = rec["uid"].endswith("#1")
        preferred = 0 if duplicate or i0 % 3 else 1  # human_preference [1, 0] -> the first image
        assert rec["label"] == (0 if k0 == preferred else 1)
        labels.add(rec["label"])
    assert labels == {0, 1}

    def images(ds):
        return {name for r in ds for name in json.loads(r["meta"])["images"]}

    assert not {r["uid"] for r in train} & {r["uid"] for r in test} and not images(train) & images(test)


def test_hpdv2_same_seed_same_draw_other_seed_other_draw(tmp_path):
    raw = make_raw(tmp_path)
    (a, ma), (b, mb), (c, _) = (build(tmp_path, raw, d, "--seed", s) for d, s in (("a", 0), ("b", 0), ("c", 1)))
    # skip reasons quote PIL's message, which holds an object address: compare the skipped items
    assert [s["item"] for s in ma.pop("skipped")] == [s["item"] for s in mb.pop("skipped")] and ma == mb
    assert [(r["uid"], r["label"], r["meta"]) for r in a] == [(r["uid"], r["label"], r["meta"]) for r in b]
    assert [r["uid"] for r in a] != [r["uid"] for r in c]
    assert sorted(r["uid"] for r in a) == sorted(r["uid"] for r in c)


# it2afc_hpdv2_nafc: two more prompts on top of the 2AFC fixture, ids clear of the training images'
NAFC_RANKS = {13: [6, 5, 4, 3, 2, 1], 14: [1, 1, 2, 2, 3, 4]}  # 14: four distinct ranks, two of them tied
NAFC_UNREADABLE = (13, 5)  # prompt 13's best image, unreadable in the corrupt release
NAFC_IDS = {**TEST_IDS, **{p * 10 + k: (p, k) for p, ranks in NAFC_RANKS.items() for k in range(len(ranks))}}
NAFC_ALL_RANKS = {**TEST_RANKS, **NAFC_RANKS}


def make_nafc_raw(tmp_path: Path, corrupt: bool = True) -> Path:
    raw = make_raw(tmp_path, corrupt)
    root = raw / "hpdv2"
    entries = json.loads((root / "test.json").read_text())
    for p, ranks in NAFC_RANKS.items():
        names = [eval_name(p, k) for k in range(len(ranks))]
        for k, name in enumerate(names):
            write_image(root / "test" / name, color_of(p * 10 + k))
        entries.append({"prompt": f"a cat number {p}", "image_path": names, "rank": ranks, "raw_annotations": []})
    if corrupt:
        write_corrupt(root / "test" / eval_name(*NAFC_UNREADABLE))
    (root / "test.json").write_text(json.dumps(entries))
    return raw


def build_nafc(tmp_path, raw, name, *args):
    assert prepare("--dataset", "hpdv2", "--raw-dir", raw, "--data-dir", tmp_path / name, *args) == 0
    return load(tmp_path / name, "it2afc_hpdv2_nafc")


def decode_nafc(img):
    return NAFC_IDS[nearest(img, list(NAFC_IDS))]


def test_hpdv2_nafc_labels_pick_the_best_of_n_distinct_ranks(tmp_path):
    ds, manifest = build_nafc(tmp_path, make_nafc_raw(tmp_path), "d")
    # prompts 0-5: their one 4-set; 13: C(6,4) = 15 sets, of which the 10 with its unreadable image
    # are skipped when written; 14: 2 x 2 sets (one image of each tied rank); 6, 7, 8: fewer than 4 ranks
    assert len(ds) == 6 + 5 + 4 and manifest["shortfall"] == 5000 - 15
    assert manifest["params"] == {"num_samples": 5000, "num_alternatives": 4}
    assert manifest["malformed_count"] == 1
    skipped = manifest["skipped"]
    assert {s["item"] for s in skipped if "distinct ranks" in s["reason"]} == {f"a cat number {p}" for p in (6, 7, 8)}
    assert {s["item"] for s in skipped if "known corrupt" in s["reason"]} == {f"test/{KNOWN_CORRUPT}"}
    assert sum(eval_name(*NAFC_UNREADABLE) in s["item"] for s in skipped) == 10
    assert manifest["skipped_count"] == 14 + 15 - 4  # + prompt 14's sets with a tied rank
    labels = set()
    for rec in ds:
        assert rec["task"] == "it2afc" and rec["dataset"] == "hpdv2" and len(rec["images"]) == 4
        decoded = [decode_nafc(img) for img in rec["images"]]
        (p, _), ks = decoded[0], [k for _, k in decoded]
        assert {q for q, _ in decoded} == {p} and len(set(ks)) == 4 and rec["ref_text"] == f"a cat number {p}"
        ranks = [NAFC_ALL_RANKS[p][k] for k in ks]
        assert len(set(ranks)) == 4 and rec["label"] == ranks.index(min(ranks))
        names = [eval_name(p, k) for k in ks]
        assert json.loads(rec["meta"]) == {"images": names, "ranks": ranks, "num_alternatives": 4}
        assert rec["uid"] == "hpdv2/test/" + "-".join(eval_name(p, k) for k in sorted(ks))
        labels.add(rec["label"])
    assert labels == {0, 1, 2, 3}
    two_afc, two_afc_manifest = load(tmp_path / "d", "it2afc_hpdv2")  # untouched by the N-way set
    assert two_afc_manifest["params"] == {"num_samples": 5000} and all(len(r["images"]) == 2 for r in two_afc)


def test_hpdv2_nafc_draws_one_set_per_prompt_per_round(tmp_path):
    ds, _ = build_nafc(tmp_path, make_nafc_raw(tmp_path, corrupt=False), "d")
    prompts = [decode_nafc(rec["images"][0])[0] for rec in ds]
    assert len(ds) == 6 + 15 + 4 and sorted(prompts[:8]) == [0, 1, 2, 3, 4, 5, 13, 14]
    assert all(sorted(prompts[8 + 2 * r : 10 + 2 * r]) == [13, 14] for r in range(3))  # rounds 1-3
    assert prompts[14:] == [13] * 11


def test_hpdv2_num_alternatives_option(tmp_path, capsys):
    raw = make_nafc_raw(tmp_path, corrupt=False)
    args = ["--dataset", "hpdv2", "--raw-dir", raw, "--data-dir", tmp_path / "d"]
    assert prepare(*args) == 0
    capsys.readouterr()
    assert prepare(*args, "--num-alternatives", 4) == 0  # the default, recorded: nothing to rebuild
    assert capsys.readouterr().out.count(": unchanged,") == 2

    assert prepare(*args, "--num-alternatives", 6) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert load(tmp_path / "d", "it2afc_hpdv2_nafc")[1]["params"]["num_alternatives"] == 4
    assert prepare(*args, "--num-alternatives", 6, "--overwrite") == 0
    out = capsys.readouterr().out
    assert "it2afc_hpdv2/test: unchanged" in out and "it2afc_hpdv2_nafc/test: built" in out
    (rec,), manifest = load(tmp_path / "d", "it2afc_hpdv2_nafc")  # only prompt 13 has 6 distinct ranks
    assert manifest["params"] == {"num_samples": 5000, "num_alternatives": 6}
    meta = json.loads(rec["meta"])
    assert meta["num_alternatives"] == len(rec["images"]) == 6 and meta["ranks"][rec["label"]] == 1
    assert sorted(meta["ranks"]) == [1, 2, 3, 4, 5, 6]

    two, _ = build_nafc(tmp_path, raw, "n2", "--num-alternatives", 2)  # N = 2: the 2AFC candidates
    pairs, _ = load(tmp_path / "n2", "it2afc_hpdv2")
    assert sorted(two["uid"]) == sorted(pairs["uid"])
    assert all(json.loads(r["meta"])["ranks"][r["label"]] == min(json.loads(r["meta"])["ranks"]) for r in two)


def test_num_alternatives_bad_values_and_datasets_are_clear_errors(tmp_path, capsys):
    raw = make_nafc_raw(tmp_path, corrupt=False)
    for bad, message in (("1", "must be at least 2"), ("four", "not an integer")):
        with pytest.raises(SystemExit):
            prepare("--dataset", "hpdv2", "--raw-dir", raw, "--data-dir", tmp_path / "d", "--num-alternatives", bad)
        assert f"--num-alternatives: {message}" in capsys.readouterr().err
    for dataset, split in (("kadid10k", "test"), ("mini", "test"), ("hpdv2", "train")):
        with pytest.raises(SystemExit, match=rf"{dataset} \({split}\) takes no --num-alternatives.*hpdv2 \(test\)"):
            prepare("--dataset", dataset, "--split", split, "--raw-dir", raw, "--data-dir", tmp_path / "d",
                    "--num-alternatives", 3)  # fmt: skip
    assert not (tmp_path / "d" / "it2afc_hpdv2_nafc").exists()


@pytest.mark.parametrize("n, eval_set", [(2, "it2afc_hpdv2"), (4, "it2afc_hpdv2_nafc")])
def test_hpdv2_lists_the_skipped_ties_in_the_manifest(tmp_path, n, eval_set):
    raw = make_nafc_raw(tmp_path, corrupt=False)  # prompts 0-6, 13 and 14
    assert prepare("--dataset", "hpdv2", "--raw-dir", raw, "--data-dir", tmp_path / "d") == 0
    ds, manifest = load(tmp_path / "d", eval_set)
    ties = sorted(
        ("hpdv2/test/" + "-".join(eval_name(p, k) for k in ks), f"tied ranks {[ranks[k] for k in ks]}: no answer")
        for p, ranks in NAFC_ALL_RANKS.items()
        if p not in (7, 8) and len(set(ranks)) >= n  # entries with fewer distinct ranks are skipped whole
        for ks in combinations(range(len(ranks)), n)
        if len({ranks[k] for k in ks}) < n
    )
    assert len(ties) == {2: 3, 4: 11}[n]
    skipped = [(s["item"], s["reason"]) for s in manifest["skipped"] if "distinct ranks" not in s["reason"]]
    assert sorted(skipped) == ties and not {uid for uid, _ in ties} & set(ds["uid"])
