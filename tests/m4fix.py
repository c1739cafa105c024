"""A tiny synthetic copy of the HF dataset lmms-lab/M4-Instruct-Data in its released layout:
``m4_instruct_annotations.json`` (a JSON list of LLaVA-format rows whose image paths start with the
subset folder their zip unpacks to) next to those folders, with rows of every kind the builder skips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.rawfix import color_of, image_bytes

ANNOTATIONS = "m4_instruct_annotations.json"


@dataclass
class M4Copy:
    folder: Path
    good: dict[str, int]  # subset -> rows the builder should keep (without the eval-duplicate ones)
    skipped: dict[str, int]  # reason -> rows
    eval_duplicate_ids: list[str] = field(default_factory=list)  # rows with an image of a test set
    shared_ids: list[str] = field(default_factory=list)  # rows reusing a training image / another row's image

    @property
    def kept(self) -> int:
        return sum(self.good.values())


def _turns(n_images: int, multi_turn: bool = False) -> list[dict]:
    marks = "<image>" * n_images
    if multi_turn:  # the marks spread over two human turns
        first = marks[: len("<image>")]
        return [{"from": "human", "value": f"{first}\nWhat is shown?"}, {"from": "gpt", "value": "A scene."},
                {"from": "human", "value": f"{marks[len(first):]}And now, what changed?"},
                {"from": "gpt", "value": "The colour."}]  # fmt: skip
    return [{"from": "human", "value": f"{marks}\nWhat is the difference between the images?"},
            {"from": "gpt", "value": "The second one is brighter."}]  # fmt: skip


def write_m4_copy(folder: Path, *, eval_image: bytes | None = None, training_image: bytes | None = None) -> M4Copy:
    """``eval_image``: bytes of a UniSim-Bench test image, planted in a dreamsim row; ``training_image``:
    bytes of a perceptual training image, reused by an M4 row (one file in the build)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list = []
    files: dict[str, bytes] = {}
    counter = iter(range(1000, 100000))

    def img(path: str, data: bytes | None = None) -> str:
        fmt = "JPEG" if path.endswith(".jpg") else "PNG"
        files[path] = data if data is not None else image_bytes(color_of(next(counter)), fmt=fmt)
        return path

    def row(rid, images, turns=None, **extra):
        meta = {"dataset": images[0].split("/")[0] if images else None, "split": "train"}
        r = {"id": rid, "image": images, "conversations": turns or _turns(len(images)), "metadata": meta, **extra}
        rows.append(r)
        return r

    good = {"Spot-the-Diff": 0, "HQ-Edit": 0, "dreamsim": 0}
    for i in range(8):
        row(f"spot_{i}", [img(f"Spot-the-Diff/images/{i}_a.png"), img(f"Spot-the-Diff/images/{i}_b.png")],
            _turns(2, multi_turn=i % 3 == 0))  # fmt: skip
        good["Spot-the-Diff"] += 1
    # two rows sharing an image file (and a path): one file in the build
    shared = img("Spot-the-Diff/images/shared.png")
    row("spot_shared_1", [shared, img("Spot-the-Diff/images/s1.png")])
    row("spot_shared_2", [img("Spot-the-Diff/images/s2.png"), shared])
    good["Spot-the-Diff"] += 2
    for i in range(4):
        row(f"hqedit_{i}", [img(f"HQ-Edit/images/{i}_src.jpg"), img(f"HQ-Edit/images/{i}_tgt.jpg")])
        good["HQ-Edit"] += 1
    # one row without "id" (its sample_id names it) and one whose id repeats another's
    rows.append({"sample_id": "hq_sample", "image": [img("HQ-Edit/images/x_src.jpg"), img("HQ-Edit/images/x_tgt.jpg")],
                 "conversations": _turns(2)})  # fmt: skip
    row("hqedit_0", [img("HQ-Edit/images/dup_src.jpg"), img("HQ-Edit/images/dup_tgt.jpg")])
    good["HQ-Edit"] += 2
    for i in range(3):
        row(f"dreamsim_{i}", [img(f"dreamsim/{i}/ref.png"), img(f"dreamsim/{i}/0.png"), img(f"dreamsim/{i}/1.png")],
            [{"from": "human", "value": "<image><image><image>\nWhich of the last two images is closer to the first?"},
             {"from": "gpt", "value": "The second."}])  # fmt: skip
        good["dreamsim"] += 1
    copy = M4Copy(folder, good, {})
    if eval_image is not None:
        row("dreamsim_eval", [img("dreamsim/eval/ref.png", eval_image), img("dreamsim/eval/0.png"),
                              img("dreamsim/eval/1.png")])  # fmt: skip
        copy.eval_duplicate_ids.append("m4/dreamsim_eval")
    if training_image is not None:
        row("spot_training", [img("Spot-the-Diff/images/t.png", training_image), img("Spot-the-Diff/images/t2.png")])
        good["Spot-the-Diff"] += 1
        copy.shared_ids.append("m4/spot_training")
    copy.shared_ids += ["m4/spot_shared_1", "m4/spot_shared_2"]

    skipped = {"malformed": 0, "excluded_subset": 0, "image_count_mismatch": 0, "first_turn_not_human": 0,
               "turns_not_alternating": 0, "image_mark_in_gpt_turn": 0, "missing_image": 0,
               "unreadable_image": 0}  # fmt: skip
    row("bad_count_1", [img("Spot-the-Diff/images/c1a.png"), img("Spot-the-Diff/images/c1b.png")], _turns(1))
    row("bad_count_2", [img("Spot-the-Diff/images/c2a.png")], _turns(3))
    skipped["image_count_mismatch"] += 2
    row("bad_first", [img("Spot-the-Diff/images/f.png"), img("Spot-the-Diff/images/f2.png")],
        [{"from": "gpt", "value": "<image><image>Hello."}, {"from": "human", "value": "Hi."}])  # fmt: skip
    skipped["first_turn_not_human"] += 1
    row("bad_ends_human", [img("Spot-the-Diff/images/h.png")],
        [{"from": "human", "value": "<image>Describe."}, {"from": "gpt", "value": "A cat."},
         {"from": "human", "value": "And?"}])  # fmt: skip
    row("bad_two_humans", [img("Spot-the-Diff/images/h2.png")],
        [{"from": "human", "value": "<image>Look."}, {"from": "human", "value": "Describe."},
         {"from": "gpt", "value": "A cat."}])  # fmt: skip
    skipped["turns_not_alternating"] += 2
    row("bad_mark_in_answer", [img("Spot-the-Diff/images/g1.png"), img("Spot-the-Diff/images/g2.png")],
        [{"from": "human", "value": "<image>Compare with the next one."},
         {"from": "gpt", "value": "<image> is darker."}])  # fmt: skip
    skipped["image_mark_in_gpt_turn"] += 1
    row("bad_missing", ["Spot-the-Diff/images/not_there.png", img("Spot-the-Diff/images/m.png")])
    row("bad_missing_folder", ["VIST/images/0.png", "VIST/images/1.png"])
    skipped["missing_image"] += 2
    row("bad_unreadable", [img("Spot-the-Diff/images/u.png", b"this is not an image"),
                           img("Spot-the-Diff/images/u2.png")])  # fmt: skip
    skipped["unreadable_image"] += 1
    rows.append({"id": "bad_no_turns", "image": [img("Spot-the-Diff/images/n.png")]})
    rows.append("not a row")
    row("bad_escape", ["../outside.png", img("Spot-the-Diff/images/e.png")])
    skipped["malformed"] += 3
    row("bad_3d", [img("nuscenes/samples/0.jpg"), img("nuscenes/samples/1.jpg")])
    skipped["excluded_subset"] += 1
    copy.skipped = skipped

    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / ANNOTATIONS).write_text(json.dumps(rows, indent=1))
    return copy
