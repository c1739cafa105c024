"""The UniSim-LL-N instruction data (``unisim_models.training.instructions``, ``unisim-bench
instructions``) from planted training sets of every Table 5 dataset (the CLIP trainer tests'
``write_planted``), a prepared mini test set and a synthetic M4-Instruct copy (``tests/m4fix``).

The checks read the output as LLaVA-NeXT would and decide independently of the builder's own check:
an answer's letter is looked up in the option list printed in the prompt, a number names the image
(compared byte for byte with the sample's labelled alternative) or the caption at that place."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from tests.m4fix import ANNOTATIONS, write_m4_copy
from tests.rawfix import color_of, image_bytes
from tests.test_clip_trainer import PlantedBuilder, write_planted
from unisim_models.training import instructions as ins
from unisim_models.training.config import PAPER_DATASETS
from unisim_models.training.instructions_cli import add_commands
from unisim_tasks.data.schema import ImageBytes, sample
from unisim_tasks.data.store import build_eval_set, prepared_folder
from unisim_tasks.tasks.parsing import parse_answer
from unisim_tasks.tasks.prompts import render_prompt

COUNTS = {"img2afc": 200, "it2afc": 200, "text2afc": 200, "iqa": 200}
PER_SET = 24
TEST_SET = "img2afc_nights"  # the mini test set prepared under the data root
TEST_IMAGE_UID = "iqa/test-image"  # a planted iqa_pipal training sample using one of its images


class PlantedWithTestImage(PlantedBuilder):
    """iqa_pipal's planted samples plus one whose first image is a test-set image."""

    def __init__(self, image: bytes, n: int, seed: int) -> None:
        super().__init__("pipal", "iqa_pipal", "train", n, seed)
        self.outputs = {"train": {"iqa_pipal": n + 1}}
        self.image = image

    def candidates(self, ctx, eval_set):
        yield from super().candidates(ctx, eval_set)
        images = [ImageBytes(self.image, "test.png"), ImageBytes(image_bytes(color_of(3), (16, 16)), "other.png")]
        yield sample(uid=TEST_IMAGE_UID, task="iqa", dataset="pipal", label=0, images=images)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows(folder: Path) -> list[dict]:
    return datasets.load_from_disk(str(folder))["samples"].with_format("arrow")[:].to_pylist()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llnext")
    data = tmp / "data"
    test_rows = _rows(prepared_folder(TEST_SET, data_dir=data, mini=True))  # built here, as lmms-eval would
    test_images = [im["bytes"] for r in test_rows for im in [r["ref_image"], *r["images"]]]
    for task, names in PAPER_DATASETS.items():
        for i, name in enumerate(names):
            eval_set, seed = f"{task}_{name}", 200 + 10 * list(PAPER_DATASETS).index(task) + i
            if eval_set == "iqa_pipal":
                build_eval_set(PlantedWithTestImage(test_images[0], PER_SET, seed), eval_set, "train",
                               raw_root=None, root=data)  # fmt: skip
            else:
                write_planted(data, eval_set, "train", PER_SET, seed)
    sources = {}
    for task, names in PAPER_DATASETS.items():
        for name in names:
            for row in _rows(data / f"{task}_{name}" / "train"):
                sources[f"{task}_{name}/{row['uid']}"] = row
    training_image = next(row for key, row in sources.items() if key.startswith("iqa_kadid10k/"))
    m4 = write_m4_copy(tmp / "m4", eval_image=test_images[1], training_image=training_image["images"][0]["bytes"])
    kwargs = {"data_dir": data, "counts": COUNTS, "m4_dir": m4.folder, "m4_samples": 1000, "progress": False}
    out = tmp / "out"
    status, manifest = ins.build(out, **kwargs)
    assert status == "built"
    metas = [json.loads(line) for line in (out / ins.META_FILE).read_text().splitlines()]
    return SimpleNamespace(tmp=tmp, data=data, out=out, manifest=manifest, kwargs=kwargs, m4=m4, sources=sources,
                           test_hashes={_sha(b) for b in test_images}, test_image_count=len(test_images),
                           records=json.loads((out / ins.DATA_FILE).read_text()), metas=metas)  # fmt: skip


def _perceptual(world):
    return [(r, m) for r, m in zip(world.records, world.metas) if m["source"] == "unisim"]


# -- counts and format ----------------------------------------------------------------------------
def test_counts_per_task_and_source_as_asked_with_repeats_when_a_task_has_too_few(world):
    metas, man = world.metas, world.manifest
    tasks = man["sources"]["unisim"]["tasks"]
    assert Counter(m["task"] for m in metas if m["source"] == "unisim") == COUNTS
    for task, n in COUNTS.items():
        names = PAPER_DATASETS[task]
        available = PER_SET * len(names) + (task == "iqa")  # iqa_pipal has one extra sample, a test image's
        usable = available - (task == "iqa")
        s = tasks[task]
        assert (s["requested"], s["records"], s["available"]) == (n, n, available)
        assert s["repeated"] == n - usable and s["passes"] == -(-n // usable) and s["examined"] == available
        assert set(s["per_eval_set"]) == {f"{task}_{d}" for d in names} and sum(s["per_eval_set"].values()) == n
        repeats = [m for m in metas if m["source"] == "unisim" and m["task"] == task and m["pass"] > 0]
        assert len(repeats) == s["repeated"] and all(m["id"].endswith(f"#r{m['pass']}") for m in repeats)
    m4_ids = {r["id"] for r, m in zip(world.records, metas) if m["source"] == "m4"}
    assert len(m4_ids) == world.m4.kept == man["sources"]["m4"]["records"]
    assert man["sources"]["m4"]["shortfall"] == 1000 - world.m4.kept
    assert man["num_records"] == len(world.records) == sum(COUNTS.values()) + world.m4.kept
    assert len({r["id"] for r in world.records}) == len(world.records)
    assert [r["id"] for r in world.records] == [m["id"] for m in metas]


def test_records_are_llava_conversations_with_one_image_mark_per_image_in_order(world):
    for record in world.records:
        assert set(record) == {"id", "image", "conversations"}
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and len(turns) >= 2
        assert sum(t["value"].count("<image>") for t in turns if t["from"] == "human") == len(record["image"]) >= 1
        assert not any("<image>" in t["value"] for t in turns if t["from"] == "gpt")
        for path in record["image"]:
            assert not Path(path).is_absolute() and (world.out / path).is_file()
    for record, meta in _perceptual(world):
        assert [t["from"] for t in record["conversations"]] == ["human", "gpt"]
        src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
        shown = [(world.out / p).read_bytes() for p in record["image"]]
        if meta["task"] == "text2afc":
            assert shown == [src["ref_image"]["bytes"]]
        else:
            alternatives = [im["bytes"] for im in src["images"]]
            if meta["task"] == "img2afc":
                assert shown.pop(meta["reference_position"] - 1) == src["ref_image"]["bytes"]
            assert sorted(shown) == sorted(alternatives)
    # a caption holding the literal mark cannot add one
    r = ins.render("it2afc", {"images": ["X", "Y"], "ref_text": "a <image> tag", "label": 0},
                   ins.Draw("table7", "letter:letter", False, False, None))  # fmt: skip
    assert r.human.count("<image>") == 2 and r.cleaned_texts == 1


def test_every_record_loads_in_the_projects_llava_next_trainer(world):
    llnext_data = pytest.importorskip("unisim_models.training.llnext_data")
    parse_record = getattr(llnext_data, "parse_record", None)
    if parse_record is None:
        pytest.skip("train/llnext.py's data module has no parse_record")
    for i, record in enumerate(world.records):
        sample = parse_record(record, i, world.out, "<image>")
        assert all(p.is_file() for p in sample.images)


# -- answers --------------------------------------------------------------------------------------
def _chosen(world, record, meta):
    """What the answer chooses, read from the prompt and answer alone: the image's bytes, or the caption."""
    task = meta["task"]
    human, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
    shown = [(world.out / p).read_bytes() for p in record["image"]]
    src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
    if not re.search(r"\d", answer):  # a letter: look it up in the option list the prompt prints
        index = parse_answer(answer, task, 2)
        assert index is not None, answer
        text = dict(re.findall(r"^\(([AB])\) (.+?) ?$", human, re.MULTILINE))["AB"[index]]
        number = re.fullmatch(r"(?:Image|Caption) (\d)", text)
        if number is None:  # captions listed as the options themselves
            assert task == "text2afc"
            return text
        n = int(number.group(1))
    else:
        digits = re.findall(r"\d", answer)
        assert len(digits) == 1, answer
        n = int(digits[0])
        if task == "img2afc" and shown[0] == src["ref_image"]["bytes"]:  # Table 7 numbering: the parser's own
            assert parse_answer(answer, "img2afc", 2) == n - 2
        elif task != "img2afc":
            assert parse_answer(answer, task, 2) == n - 1
    if task == "text2afc":
        captions = sorted(src["texts"], key=lambda c: re.search(rf"\b{re.escape(c)}\b", human).start())
        return captions[n - 1]
    if task == "img2afc":
        assert shown[n - 1] != src["ref_image"]["bytes"], "the answer names the reference"
    return shown[n - 1]


def test_every_answer_parses_back_to_the_samples_label(world):
    forms = Counter()
    for record, meta in _perceptual(world):
        src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
        label = src["label"]
        expected = src["texts"][label] if meta["task"] == "text2afc" else src["images"][label]["bytes"]
        assert _chosen(world, record, meta) == expected, (record, meta)
        forms[meta["task"], re.search(r"\d", record["conversations"][1]["value"]) is None] += 1
    assert all(forms[t, letter] > 20 for t in COUNTS for letter in (True, False))  # both answer forms, every task
    assert world.manifest["answer_check"]["records_checked"] == sum(COUNTS.values())


def test_a_wrong_answer_template_fails_the_build_naming_it(world, monkeypatch, tmp_path):
    monkeypatch.setitem(ins.ANSWERS["number"]["iqa"], "better", "Image 1 is worse than image {n}.")  # still right
    monkeypatch.setitem(ins.ANSWERS["number"]["iqa"], "cleaner", "The first image is better.")  # wrong for image 2
    named = r"iqa answer template 'number:cleaner' of instruction template '(open_question|open_viewer)'"
    small = {**world.kwargs, "m4_samples": 0}
    with pytest.raises(ins.InstructionDataError, match=named):  # the up-front check of every combination
        ins.build(tmp_path / "bad", **small)
    monkeypatch.setattr(ins, "check_templates", lambda: 0)
    with pytest.raises(ins.InstructionDataError, match=named + r".*\(iqa_\w+/iqa/"):  # the check of each sample
        ins.build(tmp_path / "bad", **small)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.iterdir())


def test_img2afc_numbers_map_through_the_reference_position(world):
    """With the reference at image 2 or 3 the parser's Img-2AFC reading (options = images 2 and 3) would
    pick the wrong alternative: the mapping goes through the image numbers shown."""
    d = ins.Draw("open_question", "number:noun", False, False, 3)
    r = ins.render("img2afc", {"ref_image": "R", "images": ["X", "Y"], "label": 1}, d)
    assert r.images == ["X", "Y", "R"] and r.gpt == "Image 2"
    assert parse_answer(r.gpt, "img2afc", 2) == 0  # Table 7's reading: option A, here the wrong alternative
    assert ins.answer_choice("img2afc", r.gpt, r.form, 3, r.numbers, r.options) == 1 == r.label
    assert ins.check_templates() > 1000


# -- variety --------------------------------------------------------------------------------------
def test_every_template_and_answer_template_is_used_and_the_table7_prompt_is_among_them(world):
    tasks = world.manifest["sources"]["unisim"]["tasks"]
    for task, count in COUNTS.items():
        used = {m["template"] for r, m in _perceptual(world) if m["task"] == task}
        assert used == {t["name"] for t in ins.TEMPLATES[task]} == set(tasks[task]["templates"])
        answers = {m["answer_template"] for r, m in _perceptual(world) if m["task"] == task}
        reachable = {a for t in ins.TEMPLATES[task] for a, _ in ins.answer_templates(task, t["answers"])}
        assert answers == reachable == set(tasks[task]["answer_templates"])
        assert 0 < tasks[task]["options_reversed"] < tasks[task]["options_listed"] < count
    table7 = Counter()
    for record, meta in _perceptual(world):
        if meta["template"] != "table7" or meta["options"] != sorted(meta["options"]):
            continue
        if meta["task"] == "img2afc" and meta["reference_position"] != 1:
            continue
        src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
        doc = {"task": meta["task"], "images": src["images"], "ref_text": src["ref_text"],
               "texts": [src["texts"][o] for o in meta["order"]] if meta["task"] == "text2afc" else None}  # fmt: skip
        assert record["conversations"][0]["value"] == render_prompt(doc)
        table7[meta["task"]] += 1
    assert set(table7) == set(COUNTS)


def test_alternatives_appear_in_both_orders(world):
    for task in ("img2afc", "it2afc", "iqa", "text2afc"):
        orders = Counter()
        for record, meta in _perceptual(world):
            if meta["task"] != task:
                continue
            src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
            if task == "text2afc":
                human = record["conversations"][0]["value"]
                first = [re.search(rf"\b{re.escape(c)}\b", human).start() for c in src["texts"]]
                orders[first[0] < first[1]] += 1
            else:
                shown = [(world.out / p).read_bytes() for p in record["image"]]
                orders[shown.index(src["images"][0]["bytes"]) < shown.index(src["images"][1]["bytes"])] += 1
        assert min(orders[True], orders[False]) > COUNTS[task] // 4, (task, orders)


def test_img2afc_reference_spread_over_positions_1_to_3_and_named_in_the_instruction(world):
    positions = Counter()
    for record, meta in _perceptual(world):
        if meta["task"] != "img2afc":
            continue
        src = world.sources[f"{meta['eval_set']}/{meta['uid']}"]
        shown = [(world.out / p).read_bytes() for p in record["image"]]
        k = shown.index(src["ref_image"]["bytes"]) + 1
        assert k == meta["reference_position"]
        human = record["conversations"][0]["value"]
        assert re.search(rf"[Ii]mage {k}\b[^.?;]*reference|reference[^.?;]*image {k}\b", human), human
        positions[k] += 1
    assert set(positions) == {1, 2, 3} and min(positions.values()) > COUNTS["img2afc"] // 5
    assert world.manifest["sources"]["unisim"]["tasks"]["img2afc"]["reference_positions"] == {
        str(k): n for k, n in sorted(positions.items())
    }


# -- determinism ----------------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_inputs_and_seed_give_byte_identical_builds_and_another_seed_differs(world, tmp_path):
    status, _ = ins.build(tmp_path / "again", **world.kwargs)
    assert status == "built" and _files(tmp_path / "again") == _files(world.out)
    assert ins.build(world.out, **world.kwargs)[0] == "unchanged"
    ins.build(tmp_path / "seed1", **{**world.kwargs, "seed": 1})
    again = _files(tmp_path / "seed1")
    assert again[ins.DATA_FILE] != _files(world.out)[ins.DATA_FILE]
    assert json.loads(again[ins.MANIFEST])["seed"] == 1


# -- M4-Instruct ----------------------------------------------------------------------------------
def test_m4_rows_filtered_with_reasons_counted_and_kept_rows_copied_unchanged(world):
    m4 = world.manifest["sources"]["m4"]
    assert m4["skipped"] == {**world.m4.skipped, "eval_duplicate": 1}
    rows = json.loads((world.m4.folder / ANNOTATIONS).read_text())
    assert m4["per_subset"] == world.m4.good and m4["rows_in_file"] == len(rows)
    kept = {r["id"]: (r, m) for r, m in zip(world.records, world.metas) if m["source"] == "m4"}
    assert "m4/hq_sample" in kept and sum(k.startswith("m4/hqedit_0") for k in kept) == 2  # no id / a repeated id
    assert not any(k.startswith("m4/bad_") for k in kept) and "m4/dreamsim_eval" not in kept
    for rid, (record, meta) in kept.items():
        row = rows[meta["row"]]
        assert rid.split("#")[0] == f"m4/{row.get('id', row.get('sample_id'))}"
        assert record["conversations"] == row["conversations"]
        assert [(world.out / p).read_bytes() for p in record["image"]] == [
            (world.m4.folder / p).read_bytes() for p in row["image"]]  # fmt: skip


def test_m4_samples_are_a_seeded_subset_and_zero_gives_the_v1_data(world, tmp_path):
    small = {**world.kwargs, "counts": {t: 5 for t in COUNTS}}
    _, a = ins.build(tmp_path / "a", **{**small, "m4_samples": 6})
    _, b = ins.build(tmp_path / "b", **{**small, "m4_samples": 6, "seed": 3})
    ids = [{r["id"] for r in json.loads((tmp_path / x / ins.DATA_FILE).read_text()) if r["id"].startswith("m4/")}
           for x in "ab"]  # fmt: skip
    assert a["sources"]["m4"]["records"] == b["sources"]["m4"]["records"] == 6 == len(ids[0]) == len(ids[1])
    assert a["sources"]["unisim"]["tasks"]["iqa"]["examined"] == 5  # only the drawn samples are read
    assert ids[0] != ids[1]
    _, v1 = ins.build(tmp_path / "v1", **{**small, "m4_samples": 0, "m4_dir": None})
    assert v1["sources"]["m4"]["records"] == 0 and v1["num_records"] == 20 and v1["inputs"]["m4_annotations"] is None


# -- evaluation images ----------------------------------------------------------------------------
def test_test_set_images_are_found_and_dropped_and_kept_with_the_flag(world, tmp_path):
    man = world.manifest
    checked = man["eval_check"]["sets"]
    assert [(c["eval_set"], c["mini"], c["images"]) for c in checked] == [(TEST_SET, True, world.test_image_count)]
    assert man["inputs"]["eval_sets"][0]["eval_set"] == TEST_SET
    assert man["sources"]["m4"]["eval_duplicates"] == {"found": 1, "dropped": 1, "per_subset": {"dreamsim": 1}}
    assert man["sources"]["unisim"]["tasks"]["iqa"]["eval_duplicates"] == {"found": 1, "dropped": 1}
    assert not {p.name.split(".")[0] for p in (world.out / ins.IMAGES).rglob("*.*")} & world.test_hashes
    assert not any(m.get("uid") == TEST_IMAGE_UID for m in world.metas)

    _, kept = ins.build(tmp_path / "kept", **{**world.kwargs, "keep_eval_duplicates": True})
    metas = [json.loads(x) for x in (tmp_path / "kept" / ins.META_FILE).read_text().splitlines()]
    assert kept["sources"]["m4"]["eval_duplicates"] == {"found": 1, "dropped": 0, "per_subset": {"dreamsim": 1}}
    assert kept["sources"]["unisim"]["tasks"]["iqa"]["eval_duplicates"] == {"found": 1, "dropped": 0}
    flagged = {m["id"] for m in metas if m["eval_duplicate"]}
    assert "m4/dreamsim_eval" in flagged and any(m.get("uid") == TEST_IMAGE_UID for m in metas)
    assert {p.name.split(".")[0] for p in (tmp_path / "kept" / ins.IMAGES).rglob("*.*")} & world.test_hashes


# -- images ---------------------------------------------------------------------------------------
def test_images_written_once_named_by_their_content_in_their_own_encoding(world):
    files = sorted(p for p in (world.out / ins.IMAGES).rglob("*") if p.is_file())
    referenced = {p for r in world.records for p in r["image"]}
    assert {p.relative_to(world.out).as_posix() for p in files} == referenced
    for path in files:
        data = path.read_bytes()
        assert path.stem == _sha(data) and path.parent.name == path.stem[:2]
        assert path.suffix == {b"\x89PNG": ".png", b"\xff\xd8\xff\xe0": ".jpg"}[data[:4]]
    assert world.manifest["num_images"] == len(files) == len({_sha(p.read_bytes()) for p in files})
    assert any(p.suffix == ".jpg" for p in files)  # HQ-Edit's JPEGs stay JPEGs
    by_id = {r["id"]: r for r in world.records}
    assert set(by_id["m4/spot_shared_1"]["image"]) & set(by_id["m4/spot_shared_2"]["image"])  # one file, two rows
    training = {p for r, m in zip(world.records, world.metas) if m["source"] == "unisim" for p in r["image"]}
    assert by_id["m4/spot_training"]["image"][0] in training  # one file for M4 and a training sample
    repeat = next(r for r in world.records if "#r1" in r["id"])
    assert sorted(repeat["image"]) == sorted(by_id[repeat["id"].split("#")[0]]["image"])


# -- output handling and the command --------------------------------------------------------------
def test_output_is_atomic_and_a_failed_overwrite_keeps_the_old_build(world, tmp_path, monkeypatch):
    small = {**world.kwargs, "counts": {t: 4 for t in COUNTS}, "m4_samples": 3}
    ins.build(tmp_path / "out", **small)
    before = _files(tmp_path / "out")

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(ins, "_m4", boom)
    with pytest.raises(RuntimeError):
        ins.build(tmp_path / "new", **small)
    with pytest.raises(RuntimeError):
        ins.build(tmp_path / "out", **{**small, "seed": 5}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _files(tmp_path / "out") == before


def _cli(*args) -> int:
    parser = argparse.ArgumentParser(prog="unisim-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["instructions", *map(str, args)])
    return ns.func(ns)


def test_command_builds_finds_it_unchanged_and_refuses_a_different_build_without_overwrite(world, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _cli("--help")
    assert e.value.code == 0 and "--m4-samples" in capsys.readouterr().out
    out = tmp_path / "cli"
    args = ["--out", out, "--data-dir", world.data, "--count", "img2afc=30", "--count", "it2afc=2", "--count",
            "text2afc=0", "--count", "iqa=3", "--m4-dir", world.m4.folder, "--m4-samples", "4"]  # fmt: skip
    assert _cli(*args) == 0 and capsys.readouterr().out.startswith(f"built: {out}")
    man = json.loads((out / ins.MANIFEST).read_text())
    assert man["settings"]["counts"] == {"img2afc": 30, "it2afc": 2, "text2afc": 0, "iqa": 3}
    assert man["sources"]["m4"]["records"] == 4 and "text2afc" not in man["sources"]["unisim"]["tasks"]
    assert _cli(*args) == 0 and capsys.readouterr().out.startswith("unchanged")
    assert _cli(*args, "--seed", "1") == 2 and "(seed differ); pass --overwrite" in capsys.readouterr().err
    assert _cli(*args, "--seed", "1", "--overwrite") == 0
    assert json.loads((out / ins.MANIFEST).read_text())["seed"] == 1
    assert _cli(*args[:4], "--count", "bogus=3", "--m4-samples", "0") == 2 and "bogus" in capsys.readouterr().err
    assert _cli("--out", tmp_path / "x", "--data-dir", tmp_path / "empty", "--m4-samples", "0") == 2
    assert "unisim-bench prepare --dataset nights --split train" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert _cli("--out", tmp_path / "foreign", *args[2:], "--overwrite") == 2
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"


def test_unisim_bench_instructions_is_a_subcommand():
    from unisim_tasks.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "instructions" not in sub.choices:
        pytest.skip("unisim-bench instructions is not wired into unisim_tasks/cli.py yet")
    from tests.rawfix import run_cli

    done = run_cli("instructions", "--help")
    assert done.returncode == 0 and "--keep-eval-duplicates" in done.stdout
