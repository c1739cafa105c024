"""The in-order chat template: rendered alone, stored in a model folder, and through lmms-eval.

Tiny LLaVA-OneVision and LLaVA-Interleave models are saved with an images-first template like the
published llava-hf ones; the real ``lmms-eval --model llava_hf`` CLI then shows each request's
images ahead of its whole prompt. After ``use_in_order_template`` on the folder, every image sits
where its ``<image>`` mark is in the Table 7 prompt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.tiny_llava import (
    CHAT_TEMPLATES,
    image_runs,
    make_tiny_llava_interleave,
    make_tiny_llava_onevision,
    read_trace,
    trace_env,
)
from unisim_models.chat_template import in_order_template, main_chat_template, use_in_order_template
from unisim_tasks.data.store import load_eval_set
from unisim_tasks.tasks import utils

EVAL_SETS = ("img2afc_nights", "it2afc_hpdv2", "text2afc_cdcoco", "ooo_cifar100")
TASKS = ",".join(f"unisim_mini_{s}" for s in EVAL_SETS)
MODELS = {
    "onevision": (make_tiny_llava_onevision, "transformers:LlavaOnevisionForConditionalGeneration"),
    "interleave": (make_tiny_llava_interleave, "transformers:LlavaForConditionalGeneration"),
}
UPSTREAM = CHAT_TEMPLATES["upstream"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = make_tiny_llava_onevision(tmp_path_factory.mktemp("unit") / "tiny")
    use_in_order_template(folder)
    return AutoTokenizer.from_pretrained(folder)


def test_content_parts_render_in_their_order(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "First: "}, {"type": "image"}, {"type": "text", "text": " then "},
            {"type": "image"}, {"type": "video"}, {"type": "text", "text": " same?"},
        ]},
    ]  # fmt: skip
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nFirst: <image> then <image><video> same?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_string_content_keeps_its_image_marks(tokenizer):
    messages = [{"role": "user", "content": "A: <image> B: <image> same?"}, {"role": "assistant", "content": "B"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|im_start|>user\nA: <image> B: <image> same?<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n"


def test_assistant_mask_covers_the_assistant_text(tokenizer):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Image 2"}]},
    ]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(masked) == "Image 2"


def test_folder_route_overrides_every_stored_template(tmp_path):
    from transformers import AutoProcessor, AutoTokenizer

    folder = make_tiny_llava_onevision(tmp_path / "tiny", chat_template="upstream")
    # older checkpoints also carry the template in these places, which shadow chat_template.jinja
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": UPSTREAM}))
    for name in ("processor_config.json", "tokenizer_config.json"):
        config = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**config, "chat_template": UPSTREAM}))
    (folder / "chat_template.jinja").unlink()
    assert AutoProcessor.from_pretrained(folder).chat_template == UPSTREAM

    written = use_in_order_template(folder)

    names = ("chat_template.jinja", "processor_config.json", "chat_template.json", "tokenizer_config.json")
    assert written == [folder / n for n in names]
    template = in_order_template()
    assert AutoProcessor.from_pretrained(folder).chat_template == template
    assert AutoTokenizer.from_pretrained(folder).chat_template == template
    for name in names[1:]:
        assert json.loads((folder / name).read_text())["chat_template"] == template


def test_linked_files_are_replaced_not_written_through(tmp_path):
    from transformers import AutoProcessor

    folder = make_tiny_llava_interleave(tmp_path / "snapshot", chat_template="upstream")
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (folder / "chat_template.jinja").rename(blobs / "chat_template.jinja")
    (blobs / "chat_template.json").write_text(json.dumps({"chat_template": UPSTREAM}))
    for blob in blobs.iterdir():
        (folder / blob.name).symlink_to(blob)
    before = {p.name: p.read_text() for p in blobs.iterdir()}

    use_in_order_template(folder)

    assert {p.name: p.read_text() for p in blobs.iterdir()} == before
    assert not any((folder / blob.name).is_symlink() for blob in blobs.iterdir())
    assert AutoProcessor.from_pretrained(folder).chat_template == in_order_template()


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved model folder"):
        use_in_order_template(tmp_path)
    assert not (tmp_path / "chat_template.jinja").exists()


def test_main_names_the_files_it_wrote(tmp_path):
    folder = make_tiny_llava_interleave(tmp_path / "tiny")
    assert main_chat_template(str(folder)) == f"in-order chat template written to {folder / 'chat_template.jinja'}"


def test_the_unisim_bench_command_switches_a_folder(tmp_path):
    from transformers import AutoProcessor

    folder = make_tiny_llava_onevision(tmp_path / "tiny", chat_template="upstream")
    exe = Path(sys.executable).with_name("unisim-bench")
    done = subprocess.run([str(exe), "chat-template", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("in-order chat template written to "), done.stderr
    assert AutoProcessor.from_pretrained(folder).chat_template == in_order_template()
    bad = subprocess.run([str(exe), "chat-template", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not a saved model folder" in bad.stderr


# ---------------------------------------------------------------------------------------------
# The real lmms-eval CLI, before and after the fix, on both model classes (four runs at once).


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "data"
    docs = [doc for s in EVAL_SETS for doc in load_eval_set(s, data_dir=data, mini=True)]  # built once, here
    procs = {}
    for kind, (make, target) in MODELS.items():
        for fixed in (False, True):
            run = tmp / f"{kind}-{'fixed' if fixed else 'published'}"
            model = make(run / "model", chat_template="upstream", reply="A")
            if fixed:
                use_in_order_template(model)
            env = trace_env(run / "trace.jsonl", run / "hook", target=target)
            env["UNISIM_DATA_DIR"] = str(data)
            env["OMP_NUM_THREADS"] = "1"  # four runs share the cores
            exe = Path(sys.executable).with_name("lmms-eval")
            cmd = [str(exe), "--model", "llava_hf", "--model_args", f"pretrained={model},device_map=cpu,device=cpu",
                   "--tasks", TASKS, "--batch_size", "1", "--output_path", str(run / "out")]  # fmt: skip
            procs[kind, fixed] = (run, model, subprocess.Popen(cmd, env=env, cwd=run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))  # fmt: skip
    out = {}
    for key, (run, model, proc) in procs.items():
        log, _ = proc.communicate(timeout=600)
        files = sorted((run / "out").glob("**/*_results.json"))
        assert files, log[-3000:]  # lmms-eval exits 0 even when evaluation fails
        out[key] = (json.loads(files[-1].read_text())["results"], read_trace(run / "trace.jsonl"), model)
    return docs, out


def _check_results(results):
    for s in EVAL_SETS:
        assert results[f"unisim_mini_{s}"]["unparsed,none"] == 0.0  # every request answered "A"


@pytest.mark.parametrize("kind", MODELS)
def test_published_layout_puts_all_images_first(runs, kind):
    from transformers import AutoTokenizer

    docs, out = runs
    results, records, model = out[kind, False]
    _check_results(results)
    header = AutoTokenizer.from_pretrained(model)("<|im_start|>user ", add_special_tokens=False)["input_ids"]
    assert len(records) == len(docs)
    for rec in records:
        (ids,) = rec["input_ids"]
        (run,) = image_runs(ids, rec["image_token_id"])  # all images in one run ...
        assert ids[: run[0]] == header  # ... ahead of all the prompt text


@pytest.mark.parametrize("kind", MODELS)
def test_in_order_template_puts_each_image_at_its_mark(runs, kind):
    from transformers import AutoProcessor

    docs, out = runs
    results, records, model = out[kind, True]
    _check_results(results)
    processor = AutoProcessor.from_pretrained(model)
    # the Table 7 prompt in one ChatML turn, with the processor expanding each <image> mark in place
    expected = Counter()
    for doc in docs:
        text = f"<|im_start|>user\n{utils.doc_to_text(doc)}<|im_end|>\n<|im_start|>assistant\n"
        (ids,) = processor(text=text, images=utils.doc_to_visual(doc))["input_ids"]
        expected[tuple(ids)] += 1
    assert Counter(tuple(rec["input_ids"][0]) for rec in records) == expected
