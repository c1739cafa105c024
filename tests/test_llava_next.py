"""lmms-eval's ``llava_onevision`` model (LLaVA-NeXT's own loader and generate) on the whole mini
benchmark, with a tiny random LLaVA-NeXT qwen checkpoint built offline (``tests/tiny_llava_next.py``):
all 25 mini sets are scored, and every request reaches the model with each image spliced in where
its ``<image>`` mark is.

Needs LLaVA-NeXT importable in this interpreter, which takes the older stack of
``constraints/llava-next.txt`` (LLaVA-NeXT does not import under transformers 5); skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from unisim_tasks.data import EVAL_SETS

INSTALL = (
    'pip install -c constraints/llava-next.txt -e ".[dev]" && '
    "pip install --no-deps git+https://github.com/LLaVA-VL/LLaVA-NeXT@df179663ae8b83207df100a1f7af24caec633ff9"
)
# The qwen_1_5 conversation template of LLaVA-NeXT around one user turn.
PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
LLAVA_IMPORTS = "import llava.model.builder, llava.mm_utils, llava.conversation, llava.model.language_model.llava_qwen"


def _offline(env: dict) -> dict:
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def llava_importable():
    if importlib.util.find_spec("llava") is None:
        pytest.skip(f"LLaVA-NeXT (`llava`) is not installed here; the README's LLaVA-NeXT recipe: {INSTALL}")
    done = subprocess.run([sys.executable, "-c", LLAVA_IMPORTS], capture_output=True, text=True,
                          env=_offline(os.environ), timeout=600)  # fmt: skip
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"`llava` is installed but does not import under this stack ({last}); "
                    f"the README's LLaVA-NeXT recipe: {INSTALL}")  # fmt: skip


@pytest.fixture(scope="module")
def run(llava_importable, tmp_path_factory):
    from tests.tiny_llava_next import make_tiny_llava_next_qwen, read_trace, trace_env

    tmp = tmp_path_factory.mktemp("llava_next")
    model = make_tiny_llava_next_qwen(tmp / "tiny-llava-qwen", tmp / "hub", reply="A")
    env = trace_env(tmp / "trace.jsonl", tmp / "hook")
    env.update(UNISIM_DATA_DIR=str(tmp / "data"), HF_HUB_CACHE=str(tmp / "hub"))
    exe = Path(sys.executable).with_name("lmms-eval")
    done = subprocess.run(
        [str(exe), "--model", "llava_onevision", "--model_args", f"pretrained={model},device_map=auto,device=cpu",
         "--tasks", "unisim_mini", "--batch_size", "1", "--output_path", str(tmp / "out")],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=2400,
    )  # fmt: skip
    log = done.stdout[-3000:] + done.stderr[-5000:]
    files = sorted((tmp / "out").glob("**/*_results.json"))
    assert files, log  # lmms-eval exits 0 even when the model failed to load or evaluate
    return json.loads(files[-1].read_text()), read_trace(tmp / "trace.jsonl"), tmp, model, done


def test_checkpoint_loads_as_written(run):
    """Every weight of the tiny checkpoint is used and none is left freshly initialised."""
    *_, done = run
    out = done.stdout + done.stderr
    assert "Model Class: LlavaQwenForCausalLM" in out
    assert "were not initialized" not in out and "were not used" not in out


def test_all_25_mini_sets_scored(run):
    from unisim_tasks.data.store import load_eval_set

    results, _, tmp, _, _ = run
    res, groups = results["results"], results["groups"]
    assert len(EVAL_SETS) == 25
    for eval_set in EVAL_SETS:
        leaf = res[f"unisim_mini_{eval_set}"]
        if eval_set.startswith("ir_"):
            assert math.isnan(leaf["score,none"])  # free text is no ranking: IR does not apply
            continue
        labels = load_eval_set(eval_set, data_dir=tmp / "data", mini=True)["label"]
        assert leaf["unparsed,none"] == 0.0, eval_set  # the tiny model is steered to answer "A"
        assert leaf["acc,none"] == pytest.approx(sum(l == 0 for l in labels) / len(labels)), eval_set
    assert 0.0 <= groups["unisim_mini_core"]["score,none"] <= 1.0
    assert math.isnan(groups["unisim_mini_ood"]["score,none"])  # IR is part of the OOD average
    for group in ("paa", "ooo"):
        assert not math.isnan(groups[f"unisim_mini_{group}"]["score,none"])


def test_every_image_reaches_the_model_in_place(run):
    from transformers import AutoTokenizer

    from tests.tiny_llava_next import IMAGE_TOKEN_INDEX, TOKENS_PER_IMAGE
    from unisim_tasks.data.store import load_eval_set
    from unisim_tasks.tasks import utils

    _, records, tmp, model, _ = run
    tokenizer = AutoTokenizer.from_pretrained(model)
    expected = Counter()
    for eval_set in EVAL_SETS:
        ds = load_eval_set(eval_set, data_dir=tmp / "data", mini=True)
        for doc in ds["queries"] if eval_set.startswith("ir_") else ds:
            text = utils.doc_to_text(doc)
            assert text.count("<image>") == len(utils.doc_to_visual(doc))
            expected[PREFIX + text + SUFFIX] += 1
    assert len(records) == sum(expected.values())

    seen = Counter()
    for rec in records:
        ids = rec["input_ids"]
        assert rec["batch"] == 1
        pieces, piece = [], []
        for t in [*ids, None]:
            if t == IMAGE_TOKEN_INDEX or t is None:
                pieces.append(tokenizer.decode(piece, skip_special_tokens=False))
                piece = []
            else:
                piece.append(t)
        n = ids.count(IMAGE_TOKEN_INDEX)
        seen["<image>".join(pieces)] += 1  # one placeholder per <image> mark, in the prompt's place
        assert rec["num_images"] == n
        if n == 0:
            continue
        assert rec["text_in_place"], rec  # the text rows sit between the image rows, in order
        if n > 1:  # the multi-image path: each image padded to one 384x384 view of 729 tokens
            assert rec["image_tokens"] == [TOKENS_PER_IMAGE] * n
            assert rec["images_in_place"] is True  # image i's features at placeholder i
        else:  # a single image takes the anyres path: base view plus crops
            assert rec["image_shapes"][0][0] >= 2 and rec["image_tokens"][0] > TOKENS_PER_IMAGE
    assert seen == expected
