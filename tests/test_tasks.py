"""The lmms-eval task layer: Table 7 prompts, image placement, data resolution, the paper's averages."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.rawfix import load
from unisim_tasks.data import EVAL_SETS
from unisim_tasks.data.store import NotPreparedError
from unisim_tasks.tasks import utils

TASK_DIR = Path(utils.__file__).parent

# Table 7 of the paper, verbatim (with the PAA attribute worded as in the authors' code).
TABLE7 = {
    "img2afc": "Answer the following multiple-choice question:\nHere are three images: <image><image><image>. \n If image 1 is the reference image, which image of the other two is more similar to the reference image? \n Options: \n(A) Image 2 \n(B) Image 3",
    "it2afc": "Answer the following question:\nHere are two images: <image><image>, and here is the reference caption: a red circle. which of the two images is more aligned to the reference caption?\n Options:\n(A) Image 1 \n(B) Image 2",
    "text2afc": "Answer the following multiple-choice question:\nGiven the reference image: <image> and two captions, caption 1: a red circle, caption 2: a blue square \n which caption has a better alignment with the reference image? \nOptions:\n(A) Caption 1\n(B) Caption 2",
    "iqa": "Answer the following multiple-choice question:\nGiven two images: <image><image> which image has a better quality? \nOptions:\n(A) Image 1\n(B) Image 2",
    "paa": "Answer the following multiple-choice question:\nGiven two images: <image><image> which image is more colorful? \nOptions:\n(A) Image 1 \n(B) Image 2",
    "ooo": "Answer the following multiple-choice question:\nHere are three images: <image><image><image>, Which one (A, B, C) is the odd-one-out of the group?\n Options:\n(A) Image 1\n(B) Image 2\n(C) Image 3",
}  # fmt: skip

MINI_OF_TYPE = {
    "img2afc": "img2afc_nights", "it2afc": "it2afc_hpdv2", "text2afc": "text2afc_polaris",
    "iqa": "iqa_kadid10k", "paa": "paa_koniq_colorfulness", "ooo": "ooo_cifar100",
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    os.environ["UNISIM_DATA_DIR"] = str(root)
    yield root
    del os.environ["UNISIM_DATA_DIR"]


def mini_doc(data_dir, task_type):
    eval_set = MINI_OF_TYPE[task_type]
    assert Path(getattr(utils, f"mini_dataset_{eval_set}")).is_dir()  # built on first use
    ds, _ = load(data_dir, eval_set, mini=True)
    return ds[0]


@pytest.mark.parametrize("task_type", sorted(TABLE7))
def test_prompt_is_table7_with_images_in_place(data_dir, task_type):
    doc = mini_doc(data_dir, task_type)
    doc = {**doc, "ref_text": "a red circle", "texts": ["a red circle", "a blue square"] if doc["texts"] else []}
    assert utils.doc_to_text(doc) == TABLE7[task_type]
    images = utils.doc_to_visual(doc)
    expected = {"img2afc": [doc["ref_image"], *doc["images"]], "text2afc": [doc["ref_image"]]}.get(task_type, doc["images"])
    assert [im.tobytes() for im in images] == [im.convert("RGB").tobytes() for im in expected]
    assert utils.doc_to_target(doc) == "ABC"[doc["label"]]

    content = utils.doc_to_messages(doc)[0]["content"]
    assert [c["type"] for c in content if c["type"] == "image"] == ["image"] * len(images)
    rebuilt = "".join(c["text"] if c["type"] == "text" else "<image>" for c in content)
    assert rebuilt == TABLE7[task_type]
    assert [c["url"].tobytes() for c in content if c["type"] == "image"] == [im.tobytes() for im in images]


def test_prompt_wording_can_be_swapped_per_model_without_code(data_dir, tmp_path):
    (tmp_path / "iqa.jinja").write_text("Which of <image> and <image> looks better? Reply A or B.")
    doc = mini_doc(data_dir, "iqa")
    kwargs = {"pre_prompt": "<|sys|>", "post_prompt": "\nAnswer:", "prompt_dir": str(tmp_path)}
    assert utils.doc_to_text(doc, kwargs) == "<|sys|>Which of <image> and <image> looks better? Reply A or B.\nAnswer:"
    assert len([c for c in utils.doc_to_messages(doc, kwargs)[0]["content"] if c["type"] == "image"]) == 2
    # other task types keep the built-in Table 7 template
    assert utils.doc_to_text(mini_doc(data_dir, "ooo"), kwargs).startswith("<|sys|>Answer the following")


def test_n_alternative_it2afc_lists_every_image_and_option(data_dir):
    doc = dict(mini_doc(data_dir, "it2afc"))
    doc["images"] = doc["images"] * 2
    text = utils.doc_to_text(doc)
    assert "Here are four images: <image><image><image><image>," in text
    assert text.endswith("(A) Image 1 \n(B) Image 2 \n(C) Image 3 \n(D) Image 4")
    # as lmms-eval passes it to doc_to_text: without the image columns
    del doc["images"]
    doc["meta"] = '{"num_alternatives": 4}'
    assert utils.doc_to_text(doc) == text


@pytest.mark.parametrize("task_type", sorted(TABLE7))
def test_prompts_and_scores_need_no_image_columns(data_dir, task_type):
    doc = mini_doc(data_dir, task_type)
    bare = {k: v for k, v in doc.items() if k not in ("images", "ref_image")}
    assert utils.doc_to_text(bare) == utils.doc_to_text(doc)
    assert utils.process_results(bare, ["ABC"[doc["label"]]])["acc"] == 1.0


def test_unprepared_set_names_the_command_that_prepares_it(data_dir):
    with pytest.raises(NotPreparedError, match=r"unisim-bench prepare --dataset koniq10k --split test --raw-dir DIR"):
        utils.dataset_paa_koniq_sharpness
    with pytest.raises(AttributeError):
        utils.no_such_function


def test_process_results_scores_parsed_answers(data_dir):
    doc = mini_doc(data_dir, "ooo")
    right = "ABC"[doc["label"]]
    wrong = "ABC"[(doc["label"] + 1) % 3]
    assert utils.process_results(doc, [f"({right})"]) == {"acc": 1.0, "unparsed": 0.0, "score": 1.0}
    assert utils.process_results(doc, [f"The answer is {wrong}."]) == {"acc": 0.0, "unparsed": 0.0, "score": 0.0}
    assert utils.process_results(doc, ["I cannot tell."]) == {"acc": 0.0, "unparsed": 1.0, "score": 0.0}


def test_ir_is_not_applicable_to_free_text_and_scored_for_rankings(data_dir):
    getattr(utils, "mini_dataset_ir_roxford")
    dd, _ = load(data_dir, "ir_roxford", mini=True)
    q = dd["queries"][0]
    na = utils.process_results(q, ["The first gallery image."])
    assert math.isnan(na["map_medium"]) and math.isnan(utils.aggregate_ir_score([na["score"]]))
    perfect = [*q["easy"], *q["hard"], *q["junk"]]
    rest = [g for g in dd["gallery"]["uid"] if g not in perfect]
    import json

    scored = utils.process_results(q, [json.dumps(perfect + rest)])
    assert scored["map_medium"] == 1.0 and scored["score"] == (1.0, scored["map_hard"])
    reversed_ranking = utils.process_results(q, [json.dumps(rest + perfect)])
    assert reversed_ranking["map_medium"] < 0.5


def test_core_and_ood_averages_are_means_of_task_group_means():
    # core: Img-2AFC (3 datasets), IT-2AFC (5), Text-2AFC (3), IQA (5), in the group YAML's order
    scores = [0.9, 0.6, 0.6] + [1.0] * 5 + [0.3] * 3 + [0.5, 0.5, 0.5, 0.5, 1.0]
    assert utils.core_average(scores, [1] * 16, False) == pytest.approx((0.7 + 1.0 + 0.3 + 0.6) / 4)
    # not the mean over the 16 datasets
    assert utils.core_average(scores, [1] * 16, False) != pytest.approx(sum(scores) / 16)
    ood = [0.6] * 5 + [0.9, 0.7] + [0.2, 0.4]
    assert utils.ood_average(ood, [1] * 9, False) == pytest.approx((0.6 + 0.8 + 0.3) / 3)
    assert math.isnan(utils.ood_average([0.6] * 7 + [math.nan] * 2, [1] * 9, False))
    with pytest.raises(ValueError, match="expected the scores of img2afc"):
        utils.core_average(scores[:-1], [1] * 15, False)


def test_every_eval_set_has_a_task_and_a_mini_task_in_its_groups():
    def read(name):
        return yaml.safe_load((TASK_DIR / name).read_text().replace("!function", ""))

    for prefix, attr in (("unisim", "dataset"), ("unisim_mini", "mini_dataset")):
        for eval_set in EVAL_SETS:
            leaf = read(f"{prefix}_{eval_set}.yaml")
            assert leaf["task"] == f"{prefix}_{eval_set}"
            assert leaf["dataset_path"].split()[-1] == f"utils.{attr}_{eval_set}"
            task_type = eval_set.split("_")[0]
            assert leaf["task"] in read(f"_{prefix}_{task_type}.yaml")["task"]
        core = read(f"_{prefix}_core.yaml")["task"]
        ood = read(f"_{prefix}_ood.yaml")["task"]
        # the order utils.CORE_GROUPS / OOD_GROUPS rely on
        assert core == [f"{prefix}_{t}" for t, _ in utils.CORE_GROUPS]
        assert ood == [f"{prefix}_{t}" for t, _ in utils.OOD_GROUPS]
        for task_type, n in utils.CORE_GROUPS + utils.OOD_GROUPS:
            assert len(read(f"_{prefix}_{task_type}.yaml")["task"]) == n
        assert read(f"_{prefix}.yaml")["task"] == [f"{prefix}_core", f"{prefix}_ood"]


def lmms_eval(*args, env=None, cwd=None):
    exe = Path(sys.executable).with_name("lmms-eval")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_lmms_eval_lists_the_tasks_without_include_path(tmp_path):
    out = lmms_eval("--tasks", "list", cwd=tmp_path)
    listed = {line.strip()[2:] for line in (out.stdout + out.stderr).splitlines() if line.strip().startswith("- unisim")}
    groups = {"unisim", "unisim_core", "unisim_ood", "unisim_mini", "unisim_mini_core", "unisim_mini_ood"}
    groups |= {f"{p}_{t}" for p in ("unisim", "unisim_mini") for t in ("img2afc", "it2afc", "text2afc", "iqa", "paa", "ooo", "ir")}
    leaves = {f"{p}_{e}" for p in ("unisim", "unisim_mini") for e in (*EVAL_SETS, "it2afc_hpdv2_nafc")}
    assert listed == groups | leaves


def test_structured_answers_of_a_scoring_model(data_dir):
    doc = mini_doc(data_dir, "iqa")
    right, wrong = "AB"[doc["label"]], "AB"[1 - doc["label"]]
    answer = {"answer": right, "choices": {"naive": right, "clip-iqa": wrong}, "scores": {"naive": [0.3, 0.2]}}
    scores = utils.process_results(doc, [json.dumps(answer)])
    assert scores["acc"] == 1.0 and scores["acc_naive"] == 1.0 and scores["acc_clipiqa"] == 0.0
    free_text = utils.process_results(doc, [f"Answer: {right}"])
    assert free_text["acc"] == 1.0 and math.isnan(free_text["acc_naive"]) and math.isnan(free_text["acc_clipiqa"])
    # a JSON-looking answer without "answer" is read as free text
    assert utils.process_results(doc, ['{"foo": 1}'])["unparsed"] == 1.0
    ooo = mini_doc(data_dir, "ooo")
    assert utils.process_results(ooo, [json.dumps({"answer": "ABC"[ooo["label"]]})])["acc"] == 1.0


def test_a_measure_that_does_not_apply_scores_nan_not_wrong(data_dir):
    """A scoring model answers {"answer": null} where its measure has nothing to say (the paper's "-")."""
    for task_type in ("it2afc", "iqa"):
        doc = mini_doc(data_dir, task_type)
        scores = utils.process_results(doc, [json.dumps({"answer": None, "reason": "no text encoder"})])
        assert scores and all(math.isnan(v) for v in scores.values()), scores
    assert utils.process_results(doc, ['{"answer": 3}'])["unparsed"] == 1.0  # not a letter, not null
