"""The metric API (``create_metric``), the presets and ``unisim-bench score``: a tiny HF CLIP saved
into a hub cache under the UniSim ViT-B/32 base's id, with a LoRA checkpoint in the released layout."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.tiny_clip import images, make_hf_clip, make_peft_adapter_folder
from unisim_models import create_metric, list_presets
from unisim_models.presets import PRESETS, TRAINER_METADATA, PresetError, resolve
from unisim_models.unisim_clip import UniSimCLIP
from unisim_tasks.data import EVAL_SETS
from unisim_tasks.data.store import load_eval_set
from unisim_tasks.tasks.prompts import letter

BASE = PRESETS["unisim_vit_b_32"].hf_model
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as huggingface_hub's cache does for ``repo_id`` at revision main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metric")
    folder = make_hf_clip(tmp, lora=True)
    cache = tmp / "hub"
    put_in_hub_cache(cache, BASE, folder)
    env = {"HF_HUB_CACHE": str(cache), "UNISIM_DATA_DIR": str(tmp / "data"), "UNISIM_CHECKPOINTS": str(tmp / "none"), **OFFLINE}
    return SimpleNamespace(tmp=tmp, folder=folder, lora=folder / "unisim_lora.pt", env=env)


@pytest.fixture()
def hub(tiny, monkeypatch):
    for key, value in tiny.env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def cli_run(tiny):
    """``lmms-eval --model unisim_clip --model_args model=unisim_vit_b_32,lora=...`` on the mini benchmark."""
    out = tiny.tmp / "out"
    cmd = [str(Path(sys.executable).with_name("lmms-eval")), "--model", "unisim_clip",
           "--model_args", f"model=unisim_vit_b_32,lora={tiny.lora}", "--tasks", "unisim_mini",
           "--batch_size", "16", "--output_path", str(out), "--log_samples"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **tiny.env}, cwd=tiny.tmp, timeout=900)
    files = sorted(out.glob("**/*_results.json"))
    assert files, done.stdout[-3000:] + done.stderr[-3000:]
    logged = {}
    for eval_set in EVAL_SETS:
        path = next(out.glob(f"**/*_samples_unisim_mini_{eval_set}.jsonl"))
        for line in path.read_text().splitlines():
            row = json.loads(line)
            response = row["filtered_resps"] if isinstance(row["filtered_resps"], str) else row["filtered_resps"][0]
            logged[eval_set, row["doc_id"]] = json.loads(response)
    return json.loads(files[-1].read_text()), logged


def judge_with_metric(metric, doc, mode):
    task = doc["task"]
    if task == "img2afc":
        return metric.img2afc(doc["ref_image"], *doc["images"])
    if task == "it2afc":
        return metric.it2afc(doc["ref_text"], doc["images"])
    if task == "text2afc":
        return metric.text2afc(doc["ref_image"], doc["texts"])
    if task == "iqa":
        return metric.quality(doc["images"], mode=mode)
    if task == "paa":
        return metric.attribute(doc["images"], doc["attribute"], mode=mode)
    if task == "ooo":
        return metric.odd_one_out(doc["images"])
    raise AssertionError(task)


def test_choices_and_scores_equal_unisim_clip_through_lmms_eval(cli_run, tiny, hub):
    results, logged = cli_run
    assert results["results"]["unisim_mini_img2afc_nights"]["acc,none"] == 1.0  # the preset really ran
    metric = create_metric("unisim_vit_b_32", device="cpu", lora=tiny.lora)
    compared = 0
    for eval_set in EVAL_SETS:
        if eval_set.startswith("ir_"):
            continue
        docs = load_eval_set(eval_set, mini=True)
        for i, doc in enumerate(docs):
            answer = logged[eval_set, i]
            mine = judge_with_metric(metric, doc, "naive")
            assert letter(mine.choice) == answer["answer"], (eval_set, i)
            if doc["task"] in ("iqa", "paa"):
                clip_iqa = judge_with_metric(metric, doc, "clip-iqa")
                assert letter(clip_iqa.choice) == answer["choices"]["clip-iqa"], (eval_set, i)
                np.testing.assert_allclose(mine.scores["naive"], answer["scores"]["naive"], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(
                    clip_iqa.scores["clip-iqa-logit"], answer["scores"]["clip-iqa-logit"], rtol=1e-5, atol=1e-5
                )
            elif doc["task"] == "ooo":
                np.testing.assert_allclose(mine.scores["pair_similarities"], answer["pair_similarities"], atol=1e-6)
            else:
                np.testing.assert_allclose(mine.scores["similarity"], answer["scores"], atol=1e-6)
            compared += 1
    assert compared == sum(len(load_eval_set(e, mini=True)) for e in EVAL_SETS if not e.startswith("ir_"))


def test_a_batch_equals_the_samples_one_by_one(tiny, hub):
    metric = create_metric("unisim_vit_b_32", device="cpu", lora=tiny.lora)
    docs = load_eval_set("img2afc_nights", mini=True)
    batch = metric.img2afc([d["ref_image"] for d in docs], [d["images"][0] for d in docs], [d["images"][1] for d in docs])
    assert [j.choice for j in batch] == [metric.img2afc(d["ref_image"], *d["images"]).choice for d in docs]
    assert [j.choice for j in batch] == [d["label"] for d in docs]  # the right alternative is the reference itself
    docs = load_eval_set("it2afc_hpdv2_nafc", mini=True)
    batch = metric.it2afc([d["ref_text"] for d in docs], [d["images"] for d in docs])
    for judged, doc in zip(batch, docs):  # batched forwards: equal up to float rounding
        alone = metric.it2afc(doc["ref_text"], doc["images"])
        assert judged.choice == alone.choice
        np.testing.assert_allclose(judged.scores["similarity"], alone.scores["similarity"], atol=1e-6)
    assert {len(j.scores["similarity"]) for j in batch} == {4}
    triples = [d["images"] for d in load_eval_set("ooo_cifar100", mini=True)]
    assert [j.choice for j in metric.odd_one_out(triples)] == [metric.odd_one_out(t).choice for t in triples]


def test_each_distinct_image_is_encoded_once_per_call(tiny, hub):
    metric = create_metric(str(tiny.folder), device="cpu")
    ims = images(3)
    metric.img2afc([ims[0], ims[0], ims[1]], [ims[1], ims[1], ims[2]], [ims[2], ims[2].copy(), ims[0]])
    assert metric.encoder.image_forwards == 3
    metric.similarity([ims[0], "a photo"], [ims[0].copy(), ims[1]])
    assert metric.encoder.image_forwards == 3 + 2


def test_paths_bytes_arrays_and_tensors_are_the_same_image(tiny, tmp_path):
    metric = create_metric(str(tiny.folder), device="cpu")
    ims = images(3)
    paths = []
    for i, im in enumerate(ims):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    as_pil = metric.embed_images(ims)
    assert torch.equal(metric.embed_images([str(p) for p in paths]), as_pil)
    assert torch.equal(metric.embed_images([p.read_bytes() for p in paths]), as_pil)
    assert torch.equal(metric.embed_images([np.asarray(im) for im in ims]), as_pil)
    uint8 = torch.stack([torch.from_numpy(np.asarray(im)).permute(2, 0, 1) for im in ims])
    assert torch.equal(metric.embed_images(uint8), as_pil)  # an [N, 3, H, W] batch
    assert torch.equal(metric.embed_images(list(uint8.float() / 255)), as_pil)  # floats in [0, 1]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        metric.img2afc(str(tmp_path / "missing.png"), ims[0], ims[1])
    with pytest.raises(ValueError, match="3, H, W"):
        metric.embed_images([torch.zeros(5, 8, 8)])


def test_similarity_of_images_and_texts(tiny):
    metric = create_metric(str(tiny.folder), device="cpu")
    ims = images(2)
    e = metric.embed_images(ims)
    t = metric.embed_texts(["a photo"])
    assert metric.similarity(ims[0], ims[1]) == pytest.approx(float(e[0] @ e[1]), abs=1e-6)
    assert metric.similarity(ims[0], "a photo") == pytest.approx(float(e[0] @ t[0]), abs=1e-6)
    pair = metric.similarity([ims[0], "a photo"], [ims[1], ims[1]])
    assert pair == pytest.approx([float(e[0] @ e[1]), float(t[0] @ e[1])], abs=1e-6)
    with pytest.raises(ValueError, match="different lengths"):
        metric.similarity([ims[0]], [ims[0], ims[1]])


def test_quality_and_attribute_modes(tiny):
    metric = create_metric(str(tiny.folder), device="cpu")  # a plain HF folder: CLIP-IQA by default
    ims = images(4)
    default = metric.quality(ims)
    assert default.choices.keys() == {"clip-iqa"} and len(default.scores["clip-iqa-logit"]) == 4
    naive = metric.attribute(ims, "brightness", mode="naive")
    assert set(naive.scores) == {"naive"} and naive.choice == int(np.argmax(naive.scores["naive"]))
    with pytest.raises(ValueError, match="unknown attribute"):
        metric.attribute(ims, "loudness")


# -- presets ---------------------------------------------------------------------------------------
def test_the_papers_encoders_are_listed():
    names = {p.name: p for p in list_presets()}
    assert {"clip_vit_b_32", "clip_vit_l_14", "clip_vit_l_14_336", "clip_vit_h_14", "siglip_so400m",
            "unisim_vit_b_32", "unisim_vit_l_14"} <= names.keys()  # fmt: skip
    assert names["unisim_vit_l_14"].hf_model == "openai/clip-vit-large-patch14-336"
    assert names["unisim_vit_b_32"].needs_checkpoint and not names["clip_vit_b_32"].needs_checkpoint


def test_a_unisim_preset_without_its_checkpoint_says_where_to_get_it(tiny, hub):
    with pytest.raises(PresetError, match=r"drive\.google\.com.*unisim_vit_b_32\.pt"):
        create_metric("unisim_vit_b_32")
    with pytest.raises(PresetError, match="not found"):
        create_metric("unisim_vit_b_32", lora=tiny.tmp / "nope.pt")
    with pytest.raises(PresetError, match="neither a preset"):
        create_metric("unisim_vit_b_64")


def test_a_checkpoint_saved_in_the_checkpoint_folder_is_found(tiny, hub, monkeypatch, tmp_path):
    monkeypatch.setenv("UNISIM_CHECKPOINTS", str(tmp_path))
    shutil.copy(tiny.lora, tmp_path / "unisim_vit_b_32.pt")
    assert resolve("unisim_vit_b_32").encoder_args == {"hf_model": BASE, "lora": str(tmp_path / "unisim_vit_b_32.pt")}
    found = create_metric("unisim_vit_b_32", device="cpu")
    given = create_metric("unisim_vit_b_32", device="cpu", lora=tiny.lora)
    base = create_metric(str(tiny.folder), device="cpu")
    ims = images(2)
    assert torch.equal(found.embed_images(ims), given.embed_images(ims))
    assert not torch.allclose(found.embed_images(ims), base.embed_images(ims))  # the LoRA is applied


def test_a_trainer_output_folder_is_base_plus_adapter(tiny, tmp_path):
    out = make_peft_adapter_folder(tiny.folder, tmp_path / "run")
    (out / TRAINER_METADATA).write_text(json.dumps({"format": "unisim-clip-lora", "base_model": str(tiny.folder)}))
    resolved = resolve(out)
    assert resolved.encoder_args == {"hf_model": str(tiny.folder), "lora": str(out)}
    assert resolved.quality_mode == "naive"
    trained = create_metric(out, device="cpu")
    ims = images(2)
    assert not torch.allclose(trained.embed_images(ims), create_metric(str(tiny.folder), device="cpu").embed_images(ims))
    model = UniSimCLIP(model=str(out), device="cpu")
    assert torch.equal(model.encoder.encode_images(ims), trained.embed_images(ims))


def test_an_llava_folder_is_an_lmm_not_an_encoder(tmp_path):
    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava"}))
    assert resolve(folder).lmm_folder == folder
    with pytest.raises(ValueError, match="llava_hf"):
        UniSimCLIP(model=str(folder), device="cpu")


def test_unisim_clip_preset_args_are_checked(tiny, hub):
    with pytest.raises(ValueError, match="leave out hf_model"):
        UniSimCLIP(model="unisim_vit_b_32", hf_model=BASE, lora=str(tiny.lora), device="cpu")
    with pytest.raises(PresetError, match="drive.google.com"):
        UniSimCLIP(model="unisim_vit_b_32", device="cpu")


# -- unisim-bench score / presets ----------------------------------------------------------------------
def unisim_bench(*args, env):
    exe = Path(sys.executable).with_name("unisim-bench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def test_score_prints_the_metrics_choice(tiny, tmp_path, hub):
    ims = images(3, seed=4)
    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    for im, p in zip(ims, paths):
        im.save(p)
    args = ["score", "--metric", "unisim_vit_b_32", "--lora", str(tiny.lora), "--device", "cpu"]
    done = unisim_bench(*args, "--task", "img2afc", paths[0], paths[1], paths[2], "--json", env=tiny.env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = create_metric("unisim_vit_b_32", device="cpu", lora=tiny.lora).img2afc(*paths)
    assert (out["choice"], out["answer"], out["chosen"]) == (expected.choice, letter(expected.choice), paths[1 + expected.choice])
    assert out["scores"]["similarity"] == pytest.approx(expected.scores["similarity"], abs=1e-6)
    text = unisim_bench(*args, "--task", "it2afc", "a red square", paths[1], paths[2], env=tiny.env)
    assert text.returncode == 0 and text.stdout.startswith("choice: "), text.stderr
    assert len(text.stdout.split("similarity: ")[1].split()) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "img2afc", "a.png", "b.png"], "REF A B"),
        (["--task", "img2afc", "missing1.png", "missing2.png", "missing3.png"], "image file not found"),
        (["--task", "attribute", "a.png"], "--attribute"),
    ],
)  # fmt: skip
def test_score_bad_input_is_one_clear_line(tiny, args, message):
    done = unisim_bench("score", "--metric", str(tiny.folder), "--device", "cpu", *args, env=tiny.env)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_presets_command_lists_them_with_their_checkpoint_state(tiny, tmp_path):
    (tmp_path / "unisim_vit_l_14.pt").write_bytes(b"x")
    done = unisim_bench("presets", "--json", env={**tiny.env, "UNISIM_CHECKPOINTS": str(tmp_path)})
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows.keys() == PRESETS.keys()
    assert rows["unisim_vit_l_14"]["checkpoint_found"] is True and rows["unisim_vit_b_32"]["checkpoint_found"] is False
    assert "drive.google.com" in rows["unisim_vit_b_32"]["lora_url"]
