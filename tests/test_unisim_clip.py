"""`unisim_clip`: a tiny random open_clip model (custom config, weights in a temp file) scoring the
mini benchmark, in process against a direct open_clip computation and through the real CLI."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import open_clip
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_clip import make_hf_clip, make_open_clip_checkpoint
from unisim_models.unisim_clip import UniSimCLIP
from unisim_tasks.data import EVAL_SETS
from unisim_tasks.data.store import prepared_folder

import datasets

# The paper's prompts (App. C), written out here independently of the package.
NAIVE = {None: "A high quality photo.", "brightness": "A bright photo.", "colorfulness": "A very colorful photo.",
         "contrast": "A high contrast photo.", "sharpness": "A very sharp photo"}  # fmt: skip
ANTONYMS = {None: ("Good photo.", "Bad photo."), "brightness": ("Bright photo.", "Dark photo."),
            "colorfulness": ("Colorful photo.", "Dull photo"), "contrast": ("High contrast photo.", "Low contrast photo."),
            "sharpness": ("Sharp photo.", "Blurry photo.")}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny_clip")
    config, weights, name = make_open_clip_checkpoint(tmp)
    data = tmp / "data"
    for eval_set in EVAL_SETS:
        prepared_folder(eval_set, data_dir=data, mini=True)
    return SimpleNamespace(config=config, weights=weights, name=name, data=data, tmp=tmp)


def task_dict(tiny):
    return {e: datasets.load_from_disk(str(prepared_folder(e, data_dir=tiny.data, mini=True))) for e in EVAL_SETS}


def make_model(tiny, **kwargs):
    model = UniSimCLIP(model=tiny.name, model_config=str(tiny.config), pretrained=str(tiny.weights), **kwargs)
    model.task_dict = task_dict(tiny)
    return model


def requests_for(eval_set, n):
    split = "queries" if eval_set.startswith("ir_") else "samples"
    return [SimpleNamespace(args=("", {}, None, i, eval_set, split)) for i in range(n)]


class Direct:
    """The same weights used straight through open_clip."""

    def __init__(self, tiny):
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(tiny.name, pretrained=str(tiny.weights))
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(tiny.name)
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    @torch.no_grad()
    def images(self, ims):
        return F.normalize(self.model.encode_image(torch.stack([self.preprocess(im.convert("RGB")) for im in ims])), dim=-1)

    @torch.no_grad()
    def texts(self, texts):
        return F.normalize(self.model.encode_text(self.tokenizer(texts)), dim=-1)

    def scores(self, doc):
        """(scores, higher-is-chosen) for one sample, per the paper's rules."""
        task = doc["task"]
        if task == "img2afc":
            return (self.images([doc["ref_image"]]) @ self.images(doc["images"]).T)[0]
        if task == "it2afc":
            return (self.texts([doc["ref_text"]]) @ self.images(doc["images"]).T)[0]
        if task == "text2afc":
            return (self.images([doc["ref_image"]]) @ self.texts(doc["texts"]).T)[0]
        if task in ("iqa", "paa"):
            return (self.images(doc["images"]) @ self.texts([NAIVE[doc["attribute"]]]).T)[:, 0]
        if task == "ooo":
            e = self.images(doc["images"])
            pair = {(0, 1): 2, (0, 2): 1, (1, 2): 0}
            sims = {p: float(e[p[0]] @ e[p[1]]) for p in pair}
            odd = torch.zeros(3)
            odd[pair[max(sims, key=sims.get)]] = 1.0
            return odd
        raise AssertionError(task)

    def clip_iqa(self, doc):
        pos, neg = ANTONYMS[doc["attribute"]]
        sims = self.images(doc["images"]) @ self.texts([pos, neg]).T
        return torch.softmax(self.logit_scale * sims, dim=1)[:, 0]


def test_choices_equal_a_direct_open_clip_computation_on_every_task_type(tiny):
    model, direct = make_model(tiny), Direct(tiny)
    for eval_set in EVAL_SETS:
        docs = model.task_dict[eval_set]["queries" if eval_set.startswith("ir_") else "samples"]
        answers = model.generate_until(requests_for(eval_set, len(docs)))
        for doc, answer in zip(docs, answers):
            if doc["task"] == "ir":
                gallery = model.task_dict[eval_set]["gallery"]
                sims = (direct.images([doc["ref_image"]]) @ direct.images(gallery["image"]).T)[0]
                uids = gallery["uid"]
                expected = [uids[i] for i in torch.argsort(sims, descending=True, stable=True).tolist()]
                assert json.loads(answer) == expected
                continue
            reply = json.loads(answer)
            expected = direct.scores(doc)
            if "scores" in reply and doc["task"] not in ("iqa", "paa"):
                assert reply["scores"] == pytest.approx(expected.tolist(), abs=1e-5)
            if doc["task"] in ("iqa", "paa"):
                assert reply["scores"]["naive"] == pytest.approx(expected.tolist(), abs=1e-5)
                assert reply["scores"]["clip-iqa"] == pytest.approx(direct.clip_iqa(doc).tolist(), abs=1e-5)
            top2 = torch.topk(expected, 2).values
            if float(top2[0] - top2[1]) > 1e-4:  # a clear winner: the same choice
                assert reply["answer"] == "ABC"[int(torch.argmax(expected))], (eval_set, doc["uid"])


def test_every_distinct_item_is_encoded_once_per_run(tiny):
    model = make_model(tiny, batch_size=5)
    reqs = [r for e in EVAL_SETS if not e.startswith("ir_") for r in requests_for(e, 8)]
    model.generate_until(reqs)
    distinct = set()
    for e in EVAL_SETS:
        if e.startswith("ir_"):
            continue
        raw = model.task_dict[e]["samples"].with_format("arrow")[:].to_pylist()
        for row in raw:
            distinct.update(im["bytes"] for im in row["images"])
            if row["ref_image"]:
                distinct.add(row["ref_image"]["bytes"])
    assert model.encoder.image_forwards == len(distinct)
    texts_before = model.encoder.text_forwards
    model.generate_until(reqs)  # a second pass over the same items encodes nothing new
    assert model.encoder.image_forwards == len(distinct) and model.encoder.text_forwards == texts_before


def test_img2afc_with_the_reference_among_the_alternatives_is_always_right(tiny):
    model = make_model(tiny)
    for eval_set in ("img2afc_nights", "img2afc_bapps", "img2afc_pieapp"):
        docs = model.task_dict[eval_set]["samples"]
        answers = [json.loads(a)["answer"] for a in model.generate_until(requests_for(eval_set, len(docs)))]
        assert answers == ["AB"[label] for label in docs["label"]]


def test_iqa_modes(tiny):
    doc_req = requests_for("iqa_kadid10k", 3)
    naive = [json.loads(a) for a in make_model(tiny, iqa_mode="naive").generate_until(doc_req)]
    both = [json.loads(a) for a in make_model(tiny, iqa_mode="both").generate_until(doc_req)]
    clip_iqa = [json.loads(a) for a in make_model(tiny, iqa_mode="clip-iqa").generate_until(doc_req)]
    assert all(set(r["choices"]) == {"naive"} for r in naive)
    assert all(set(r["choices"]) == {"naive", "clip-iqa"} for r in both)
    assert [r["answer"] for r in naive] == [r["answer"] for r in both]
    assert [r["answer"] for r in clip_iqa] == [r["choices"]["clip-iqa"] for r in both]


def test_lora_checkpoint_changes_the_scores(tiny):
    folder = make_hf_clip(tiny.tmp / "hf", lora=True)
    plain = UniSimCLIP(hf_model=str(folder))
    adapted = UniSimCLIP(hf_model=str(folder), lora=str(folder / "unisim_lora.pt"))
    for model in (plain, adapted):
        model.task_dict = task_dict(tiny)
    reqs = requests_for("img2afc_nights", 4)
    plain_scores = [json.loads(a)["scores"] for a in plain.generate_until(reqs)]
    adapted_scores = [json.loads(a)["scores"] for a in adapted.generate_until(reqs)]
    assert not torch.allclose(torch.tensor(plain_scores), torch.tensor(adapted_scores), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"colour": "red"}, "unknown model_args"), ({"iqa_mode": "best"}, "iqa_mode must be one of"),
     ({"batch_size": 0}, "batch_size must be >= 1")],
)  # fmt: skip
def test_bad_model_args_are_clear(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniSimCLIP(model=tiny.name, model_config=str(tiny.config), pretrained=str(tiny.weights), **kwargs)


# -- through the real CLI --------------------------------------------------------------------------
def lmms_eval(tiny, out, *extra, launcher=(), env=None, tasks="unisim_mini"):
    env = {**os.environ, "UNISIM_DATA_DIR": str(tiny.data.parent / "cli_data"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", **(env or {})}  # fmt: skip
    args = f"model={tiny.name},model_config={tiny.config},pretrained={tiny.weights}"
    bin_dir = Path(sys.executable).parent
    cmd = [*launcher, "--model", "unisim_clip", "--model_args", args, "--tasks", tasks, "--batch_size", "16",
           "--output_path", str(out), "--log_samples", *extra]  # fmt: skip
    cmd = [str(bin_dir / "lmms-eval"), *cmd] if not launcher else [str(bin_dir / launcher[0]), *cmd[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tiny.tmp, timeout=900)
    files = sorted(Path(out).glob("**/*_results.json"))
    assert files, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(files[-1].read_text()), done


@pytest.fixture(scope="module")
def cli_run(tiny):
    return lmms_eval(tiny, tiny.tmp / "out1")


def test_cli_scores_every_task_type(cli_run, tiny):
    results, _ = cli_run
    res = results["results"]
    for eval_set in EVAL_SETS:
        leaf = res[f"unisim_mini_{eval_set}"]
        assert not math.isnan(leaf["score,none"]), eval_set
        if not eval_set.startswith("ir_"):
            assert leaf["unparsed,none"] == 0.0
        if eval_set.startswith("img2afc_"):
            assert leaf["acc,none"] == 1.0  # the right alternative is the reference itself
        if eval_set.split("_")[0] in ("iqa", "paa"):
            assert 0.0 <= leaf["acc_naive,none"] <= 1.0 and 0.0 <= leaf["acc_clipiqa,none"] <= 1.0
    assert not math.isnan(results["groups"]["unisim_mini_ood"]["score,none"])  # IR applies to an encoder
    samples = next((tiny.tmp / "out1").glob("**/*_samples_unisim_mini_img2afc_nights.jsonl"))
    first = json.loads(samples.read_text().splitlines()[0])
    response = first["filtered_resps"] if isinstance(first["filtered_resps"], str) else first["filtered_resps"][0]
    assert len(json.loads(response)["scores"]) == 2  # raw scores in the per-sample log


TWO_PROCESS_LAUNCHES = {
    "torchrun": (("torchrun", "--nproc_per_node", "2", "-m", "lmms_eval"), {}, "unisim_mini"),
    "accelerate": (("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "-m", "lmms_eval"),
                   {"ACCELERATE_USE_CPU": "1"}, "unisim_mini_ir,unisim_mini_img2afc_nights"),
}  # fmt: skip


@pytest.mark.parametrize("launch", sorted(TWO_PROCESS_LAUNCHES))
def test_two_processes_give_the_one_process_results(cli_run, tiny, launch):
    launcher, env, tasks = TWO_PROCESS_LAUNCHES[launch]
    one, _ = cli_run
    two, done = lmms_eval(tiny, tiny.tmp / f"out2_{launch}", launcher=launcher, env=env, tasks=tasks)
    log = done.stdout + done.stderr
    assert "unisim_clip: rank 0 of 2" in log and "unisim_clip: rank 1 of 2" in log, log[-3000:]
    for gallery in ("unisim_mini_ir_roxford", "unisim_mini_ir_rparis"):  # each rank encodes its share only
        shares = [re.search(rf"rank {r} encodes (\d+) of the (\d+) gallery images of {gallery}\b", log) for r in (0, 1)]
        assert all(shares), log[-3000:]
        sizes = [int(m.group(1)) for m in shares]
        assert min(sizes) > 0 and sum(sizes) == int(shares[0].group(2))
    assert set(two["results"]) <= set(one["results"]) and "unisim_mini_ir_roxford" in two["results"]
    for task, metrics in two["results"].items():
        for key, value in metrics.items():
            if key.endswith(",none") and "stderr" not in key:
                assert value == pytest.approx(one["results"][task][key], nan_ok=True), (task, key)


def test_bad_model_args_through_the_cli_write_no_results(tiny):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("lmms-eval")
    done = subprocess.run([str(exe), "--model", "unisim_clip", "--model_args", "model=ViT-B-32,hf_model=x",
                           "--tasks", "unisim_mini_img2afc_nights", "--output_path", str(tiny.tmp / "bad")],
                          capture_output=True, text=True, env=env, cwd=tiny.tmp, timeout=300)  # fmt: skip
    assert not list((tiny.tmp / "bad").glob("**/*_results.json"))
    assert "hf_model" in done.stdout + done.stderr


def test_n_alternative_hpdv2_through_the_cli(tiny):
    """The Fig. 4 extension: N images per caption, scored by the encoder and listed for LMMs."""
    env = {**os.environ, "UNISIM_DATA_DIR": str(tiny.tmp / "nafc_data"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}  # fmt: skip
    args = f"model={tiny.name},model_config={tiny.config},pretrained={tiny.weights}"
    exe = Path(sys.executable).with_name("lmms-eval")
    done = subprocess.run([str(exe), "--model", "unisim_clip", "--model_args", args, "--tasks",
                           "unisim_mini_it2afc_hpdv2_nafc", "--output_path", str(tiny.tmp / "nafc"), "--log_samples"],
                          capture_output=True, text=True, env=env, cwd=tiny.tmp, timeout=600)  # fmt: skip
    files = list((tiny.tmp / "nafc").glob("**/*_results.json"))
    assert files, done.stdout[-2000:] + done.stderr[-2000:]
    leaf = json.loads(files[0].read_text())["results"]["unisim_mini_it2afc_hpdv2_nafc"]
    assert leaf["unparsed,none"] == 0.0 and 0.0 <= leaf["acc,none"] <= 1.0
    sample = json.loads(next((tiny.tmp / "nafc").glob("**/*_samples_*.jsonl")).read_text().splitlines()[0])
    assert "Here are four images: <image><image><image><image>" in sample["input"]
    assert sample["input"].endswith("(D) Image 4")
    response = sample["filtered_resps"] if isinstance(sample["filtered_resps"], str) else sample["filtered_resps"][0]
    assert len(json.loads(response)["scores"]) == 4


@pytest.mark.parametrize("flag, expected", [((), 64), (("--batch_size", "1"), 1)])
def test_encoding_batch_defaults_to_64_on_cpu_unless_the_user_asks(tiny, flag, expected):
    """lmms-eval passes batch_size=1 when --batch_size is absent; that must not mean one image per forward."""
    env = {**os.environ, "UNISIM_DATA_DIR": str(tiny.data.parent / "cli_data"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}  # fmt: skip
    args = f"model={tiny.name},model_config={tiny.config},pretrained={tiny.weights}"
    out = tiny.tmp / f"batch_{expected}_{len(flag)}"
    done = subprocess.run([str(Path(sys.executable).with_name("lmms-eval")), "--model", "unisim_clip", "--model_args",
                           args, "--tasks", "unisim_mini_img2afc_nights", "--output_path", str(out), *flag],
                          capture_output=True, text=True, env=env, cwd=tiny.tmp, timeout=600)  # fmt: skip
    assert list(out.glob("**/*_results.json")), done.stderr[-3000:]
    assert f"rank 0 of 1 on cpu, {expected} images / texts per forward" in done.stdout + done.stderr


def test_model_reports_its_device_rank_and_world_size(tiny):
    model = make_model(tiny)
    assert model.device == torch.device("cpu") and model.rank == 0 and model.world_size == 1
    assert make_model(tiny, batch_size=1).batch_size == 64  # the int lmms-eval passes by default
    assert make_model(tiny, batch_size="1").batch_size == 1  # typed on the command line
    assert make_model(tiny, batch_size="auto").batch_size == 64


# -- image decode workers --------------------------------------------------------------------------
def test_decode_workers_answer_exactly_as_in_process(tiny, monkeypatch):
    """The mini benchmark in batches of 4 (enough pending images to start workers) with
    num_workers=2 and 0: the same answers, each distinct image forwarded once."""
    from unisim_models import unisim_clip

    started = []

    class Recording(unisim_clip.DataLoader):
        def __init__(self, *args, **kwargs):
            started.append(kwargs["num_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(unisim_clip, "DataLoader", Recording)
    reqs = [r for e in EVAL_SETS for r in requests_for(e, len(task_dict(tiny)[e]["queries" if e.startswith("ir_") else "samples"]))]
    answers, forwards = {}, {}
    for workers in (0, 2):
        started.clear()
        model = make_model(tiny, batch_size=4, num_workers=workers)
        answers[workers], forwards[workers] = model.generate_until(reqs), model.encoder.image_forwards
        assert max(started) == workers
    assert answers[2] == answers[0]
    assert forwards[2] == forwards[0] == len(model._features)


def test_decode_workers_are_skipped_for_a_batch_or_two(tiny, monkeypatch):
    """Starting workers costs more than they save on two batches (8 images in batches of 4); from a
    third batch on they are used."""
    from unisim_models import unisim_clip

    started = []
    monkeypatch.setattr(unisim_clip, "DataLoader", lambda *a, **kw: started.append(kw["num_workers"]) or [])
    model = make_model(tiny, batch_size=4, num_workers=2)
    model._where.update({f"k{i}": ("img2afc_nights", "samples", 0, "ref_image", None) for i in range(9)})
    model._measure_images([f"k{i}" for i in range(8)])
    model._measure_images([f"k{i}" for i in range(9)])
    assert started == [0, 2]


@pytest.mark.parametrize(
    "cores, local_world_size, device, expected",
    [(2, 1, "cpu", 0), (2, 1, "cuda", 1), (1, 1, "cpu", 0), (4, 1, "cpu", 3), (16, 1, "cuda", 4), (8, 2, "cpu", 3),
     (4, 2, "cpu", 0)],
)  # fmt: skip
def test_default_decode_workers(monkeypatch, cores, local_world_size, device, expected):
    from unisim_models.unisim_clip import _decode_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world_size))
    assert _decode_workers(None, torch.device(device)) == expected
    assert _decode_workers("3", torch.device(device)) == 3
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        _decode_workers(-1, torch.device(device))


def test_two_processes_with_decode_workers_give_the_one_process_results(cli_run, tiny):
    """torchrun, 2 CPU processes, each starting 2 decode workers (batches of 2: every rank has more
    than two batches of gallery and NIGHTS images to encode)."""
    one, _ = cli_run
    launcher, env, _ = TWO_PROCESS_LAUNCHES["torchrun"]
    args = f"model={tiny.name},model_config={tiny.config},pretrained={tiny.weights},num_workers=2"
    two, done = lmms_eval(tiny, tiny.tmp / "out2_workers", "--model_args", args, "--batch_size", "2", launcher=launcher,
                          env=env, tasks="unisim_mini_ir,unisim_mini_img2afc_nights")  # fmt: skip
    log = done.stdout + done.stderr
    assert "rank 0 of 2 on cpu, 2 images / texts per forward, 2 image decode workers" in log, log[-3000:]
    assert "unisim_mini_ir_roxford" in two["results"]
    for task, metrics in two["results"].items():
        for key, value in metrics.items():
            if key.endswith(",none") and "stderr" not in key:
                assert value == pytest.approx(one["results"][task][key], nan_ok=True), (task, key)
