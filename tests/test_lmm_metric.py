"""An HF LLaVA-OneVision folder as a metric: prompted with the Table 7 template, images in place even
when the folder carries the published images-first template, the reply parsed by the package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_clip import images
from tests.tiny_llava import make_tiny_llava_onevision
from unisim_models import create_metric
from unisim_models.lmm_metric import LMMMetric
from unisim_tasks.data.store import load_eval_set
from unisim_tasks.tasks.prompts import IMAGE_TOKEN, render_prompt

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    # "upstream": the images-first template the published OneVision checkpoints carry
    return make_tiny_llava_onevision(tmp_path_factory.mktemp("lmm") / "tiny-llava", reply="B", chat_template="upstream")


@pytest.fixture(scope="module")
def metric(llava):
    return create_metric(llava, device="cpu", max_new_tokens=8)


def test_the_reply_is_parsed_into_the_choice(metric):
    assert isinstance(metric, LMMMetric)
    ims = images(4)
    judged = metric.img2afc(ims[0], ims[1], ims[2])
    assert (judged.response, judged.choice) == ("B", 1)
    assert [j.choice for j in metric.odd_one_out([ims[:3], ims[1:]])] == [1, 1]
    assert metric.text2afc(ims[0], ["a cat", "a dog"]).choice == 1
    assert metric.it2afc("a cat", ims).choice == 1


def test_the_prompt_is_table_7_with_every_image_in_place(metric, tmp_path, monkeypatch):
    monkeypatch.setenv("UNISIM_DATA_DIR", str(tmp_path))
    for eval_set in ("img2afc_nights", "it2afc_hpdv2_nafc", "text2afc_cdcoco", "paa_koniq_brightness", "ooo_cifar100"):
        doc = load_eval_set(eval_set, mini=True)[0]
        table7 = render_prompt(doc)
        rendered = metric.prompt(doc)
        # the published template would put every image first; in order, the text around each mark is kept
        body = rendered.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
        assert body == table7, eval_set
        assert body.count(IMAGE_TOKEN) == table7.count(IMAGE_TOKEN) > 0


def test_counts_the_template_cannot_show_are_refused(metric):
    ims = images(3)
    with pytest.raises(ValueError, match="shows 2 alternatives, got 3"):
        metric.quality(ims)
    with pytest.raises(ValueError, match="mode="):
        metric.quality(ims[:2], mode="clip-iqa")
    with pytest.raises(NotImplementedError, match="encoder"):
        metric.similarity(ims[0], ims[1])


def test_score_command_with_an_lmm(llava, tmp_path):
    paths = []
    for i, im in enumerate(images(3)):
        paths.append(str(tmp_path / f"{i}.png"))
        im.save(paths[-1])
    exe = Path(sys.executable).with_name("unisim-bench")
    done = subprocess.run(
        [str(exe), "score", "--metric", str(llava), "--device", "cpu", "--task", "img2afc", *paths, "--json"],
        capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["answer"], out["chosen"], out["response"]) == ("B", paths[2], "B")
