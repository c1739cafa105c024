"""`unisim_classic`: weight-free baselines, through the lmms-eval CLI on the mini benchmark and in
process on planted data; every choice is checked against a direct computation written here."""

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from skimage.metrics import structural_similarity

from unisim_models.unisim_classic import UniSimClassic
from unisim_tasks.data import EVAL_SETS
from unisim_tasks.data.schema import SAMPLE_FEATURES
from unisim_tasks.data.store import prepared_folder

NAN_TYPES = ("it2afc", "text2afc", "iqa")


# -- the measures, written out independently of the package ----------------------------------------
def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def gray(image):
    return pixels(image) @ np.array([0.2126, 0.7152, 0.0722]) / 255.0


def attribute(image, name):
    if name == "brightness":
        return gray(image).mean()
    if name == "contrast":
        return gray(image).std()
    if name == "sharpness":
        g = gray(image)
        padded = np.pad(g, 1, mode="symmetric")  # scipy.ndimage's "reflect"
        lap = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * g
        return lap.var()
    r, g, b = pixels(image).transpose(2, 0, 1)
    rg, yb = r - g, 0.5 * (r + g) - b
    return math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def histogram(image):
    h, _ = np.histogramdd(pixels(image).reshape(-1, 3), bins=8, range=[(0, 256)] * 3)
    return h.ravel() / h.sum()


def ssim(a, b):
    return structural_similarity(pixels(a), pixels(b), data_range=255, channel_axis=2, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)  # fmt: skip


def expected_answer(doc, gallery=None):
    """The choice (letter, or the ranked gallery uids for IR) a direct computation gives."""
    task = doc["task"]
    if task == "img2afc":
        values = [ssim(doc["ref_image"], im) for im in doc["images"]]
        return "AB"[int(np.argmax(values))], values
    if task == "paa":
        values = [attribute(im, doc["attribute"]) for im in doc["images"]]
        return "AB"[int(np.argmax(values))], values
    if task == "ooo":
        h = [histogram(im) for im in doc["images"]]
        pairs = {(0, 1): 2, (0, 2): 1, (1, 2): 0}
        sims = {p: np.minimum(h[p[0]], h[p[1]]).sum() for p in pairs}
        return "ABC"[pairs[max(sims, key=sims.get)]], sorted(sims.values())
    if task == "ir":
        q = histogram(doc["ref_image"])
        sims = np.array([np.minimum(q, histogram(im)).sum() for im in gallery["image"]])
        return [gallery["uid"][i] for i in np.argsort(-sims, kind="stable")], None
    raise AssertionError(task)


def clear_winner(values, gap=1e-6):
    top = sorted(values, reverse=True)
    return len(top) < 2 or top[0] - top[1] > gap


# -- through the lmms-eval CLI ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classic")
    env = {**os.environ, "UNISIM_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}  # fmt: skip
    done = subprocess.run([str(Path(sys.executable).with_name("lmms-eval")), "--model", "unisim_classic", "--tasks",
                           "unisim_mini", "--output_path", str(tmp / "out"), "--log_samples"],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=900)  # fmt: skip
    files = list((tmp / "out").glob("**/*_results.json"))
    assert files, done.stdout[-3000:] + done.stderr[-3000:]
    return SimpleNamespace(results=json.loads(files[0].read_text()), out=tmp / "out", data=tmp / "data")


def test_every_task_type_is_answered_or_nan_as_documented(cli_run):
    res = cli_run.results["results"]
    for eval_set in EVAL_SETS:
        leaf = res[f"unisim_mini_{eval_set}"]
        if eval_set.split("_")[0] in NAN_TYPES:
            assert math.isnan(leaf["score,none"]) and math.isnan(leaf["acc,none"]), eval_set
        else:
            assert 0.0 <= leaf["score,none"] <= 1.0, eval_set
            if not eval_set.startswith("ir_"):
                assert leaf["unparsed,none"] == 0.0, eval_set
    groups = cli_run.results["groups"]
    assert math.isnan(groups["unisim_mini_core"]["score,none"])  # the paper's "-" for missing task types
    assert not math.isnan(groups["unisim_mini_ood"]["score,none"])
    assert groups["unisim_mini_img2afc"]["score,none"] == 1.0  # the mini data's right answer is the reference itself


def test_each_choice_equals_a_direct_computation(cli_run):
    checked = 0
    for eval_set in EVAL_SETS:
        kind = eval_set.split("_")[0]
        if kind in NAN_TYPES or eval_set == "it2afc_hpdv2_nafc":
            continue
        data = datasets.load_from_disk(str(prepared_folder(eval_set, data_dir=cli_run.data, mini=True)))
        docs = data["queries" if kind == "ir" else "samples"]
        (log,) = cli_run.out.glob(f"**/*_samples_unisim_mini_{eval_set}.jsonl")
        for line in log.read_text().splitlines():
            sample = json.loads(line)
            response = sample["filtered_resps"] if isinstance(sample["filtered_resps"], str) else sample["filtered_resps"][0]
            reply = json.loads(response)
            answer, values = expected_answer(docs[sample["doc_id"]], data["gallery"] if kind == "ir" else None)
            if kind == "ir":
                assert reply == answer, eval_set
            else:
                if kind != "ooo":
                    assert reply["scores"] == pytest.approx(values, rel=1e-6, abs=1e-9), eval_set
                if clear_winner(values):
                    assert reply["answer"] == answer, (eval_set, sample["doc_id"])
            checked += 1
    assert checked > 50


def test_text_and_quality_tasks_say_why_they_do_not_apply(cli_run):
    (log,) = cli_run.out.glob("**/*_samples_unisim_mini_iqa_kadid10k.jsonl")
    sample = json.loads(log.read_text().splitlines()[0])
    response = sample["filtered_resps"] if isinstance(sample["filtered_resps"], str) else sample["filtered_resps"][0]
    reply = json.loads(response)
    assert reply["answer"] is None and "no-reference" in reply["reason"]


# -- in process, planted data ----------------------------------------------------------------------
def texture(seed, size=64):
    """A smooth colourful image with mid-range values, so every scaling below stays in range."""
    rng = np.random.default_rng(seed)
    small = rng.integers(70, 186, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


PLANTS = {  # attribute -> the stronger version of an image
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "colorfulness": lambda im: ImageEnhance.Color(im).enhance(1.6),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.5),
    "sharpness": lambda im: im,  # the original against its blurred copy
}
WEAKER = {"sharpness": lambda im: im.filter(ImageFilter.GaussianBlur(1.5))}


def encode(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def planted_set(tmp_path, records):
    ds = datasets.Dataset.from_list(records, features=SAMPLE_FEATURES)
    return datasets.DatasetDict({"samples": ds})


def record(uid, task, images, label, ref=None, attribute=None):
    return {"uid": uid, "task": task, "dataset": "planted", "ref_image": encode(ref) if ref else None, "ref_text": None,
            "images": [encode(im) for im in images], "texts": [], "attribute": attribute, "label": label, "meta": "{}"}  # fmt: skip


def answers(model, data):
    model.task_dict = {"planted": data}
    reqs = [SimpleNamespace(args=("", {}, None, i, "planted", "samples")) for i in range(len(data["samples"]))]
    return [json.loads(a)["answer"] for a in model.generate_until(reqs)]


def test_paa_on_planted_attribute_changes_is_always_right(tmp_path):
    records = []
    for name, stronger in PLANTS.items():
        weaker = WEAKER.get(name, lambda im: im)
        for seed in range(6):
            base = texture(seed)
            pair = [weaker(base), stronger(base)] if seed % 2 else [stronger(base), weaker(base)]
            records.append(record(f"{name}/{seed}", "paa", pair, label=seed % 2, attribute=name))
    data = planted_set(tmp_path, records)
    labels = ["AB"[r["label"]] for r in records]
    assert answers(UniSimClassic(), data) == labels


@pytest.mark.parametrize("metric", ["ssim", "l2", "psnr"])
def test_img2afc_picks_the_copy_of_the_reference(tmp_path, metric):
    records = []
    for seed in range(6):
        ref, other = texture(seed), texture(100 + seed)
        pair = [other, ref.copy()] if seed % 2 else [ref.copy(), other]
        records.append(record(f"r/{seed}", "img2afc", pair, label=seed % 2, ref=ref))
    data = planted_set(tmp_path, records)
    assert answers(UniSimClassic(metric=metric), data) == ["AB"[r["label"]] for r in records]


def test_each_distinct_image_is_measured_once(tmp_path):
    shared = texture(0)
    records = [record(f"p/{i}", "paa", [shared, texture(i + 1)], label=0, attribute="brightness") for i in range(5)]
    model = UniSimClassic(batch_size=2)
    answers(model, planted_set(tmp_path, records))
    assert len(model._features) == 6  # the shared image once, five others


@pytest.mark.parametrize("kwargs, message", [({"metric": "lpips"}, "metric must be one of"), ({"colour": 1}, "unknown model_args")])
def test_bad_model_args_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniSimClassic(**kwargs)
