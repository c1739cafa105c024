"""The LLaVA-NeXT trainer (``deepspeed train/llnext.py``) on a tiny random LLaVA-Interleave base and a
planted brightness rule (``tests.tiny_llava_interleave``).

Three runs through the real ``deepspeed`` launcher with two CPU processes, shared by the tests: ZeRO-2,
ZeRO-3 (checkpoints at steps 16 and 32), and ZeRO-3 resumed from the step-16 checkpoint alone. The
ZeRO-2 model is then evaluated by lmms-eval's ``llava_hf`` on four ``unisim_mini`` sets, with the
model's inputs traced. The rest runs in this process: labels, parameter groups, bad input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.tiny_llava import image_runs, make_tiny_llava_onevision, read_trace, trace_env
from tests.tiny_llava_interleave import make_tiny_base, write_planted_data
from unisim_models.training import llnext
from unisim_models.training.config import TrainingError
from unisim_models.training.llnext_data import (
    IGNORE_INDEX, ConversationCollator, ConversationEncoder, build_dataset, parse_record,
)  # fmt: skip

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train" / "llnext.py"
CONFIGS = REPO / "train" / "configs"
LR, VISION_LR = 3e-3, 6e-4  # a tiny random model needs more than the paper's 1e-5 / 2e-6; same 1:5 ratio
SAMPLES, BATCH_PER_RANK = 256, 4  # one epoch = 32 steps of 8 samples over the two ranks
STEPS, CHECKPOINT = 32, 16
EVAL_SETS = ("paa_sice_brightness", "paa_koniq_brightness", "img2afc_nights", "it2afc_magicbrush")
TOKENS_PER_IMAGE = 4  # 28x28 images in 14x14 patches
USER, ASSISTANT = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
SUBPROCESS_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llnext")
    base = make_tiny_base(tmp / "base")
    data, images = write_planted_data(tmp / "data", SAMPLES)
    return tmp, base, data, images


def train_args(tiny, out: Path, *extra) -> list[str]:
    _, base, data, images = tiny
    return [
        "--model_name_or_path", base, "--data_path", data, "--image_folder", images, "--output_dir", out,
        "--per_device_train_batch_size", BATCH_PER_RANK, "--learning_rate", LR, "--mm_vision_tower_lr", VISION_LR,
        "--logging_steps", 4, "--dataloader_num_workers", 0, "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


def launch(tiny, stage: int, out: Path, *extra) -> str:
    """A two-process CPU run through the deepspeed launcher; its whole log."""
    cmd = [Path(sys.executable).with_name("deepspeed"), "--num_gpus", 2, "--master_port", free_port(), SCRIPT,
           "--deepspeed", CONFIGS / f"zero{stage}.json", *train_args(tiny, out, *extra)]  # fmt: skip
    done = subprocess.run(
        list(map(str, cmd)), capture_output=True, text=True, env={**os.environ, **SUBPROCESS_ENV}, cwd=tiny[0], timeout=600
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    return log


@pytest.fixture(scope="module")
def zero2(tiny):
    out = tiny[0] / "zero2"
    return out, launch(tiny, 2, out, "--save_strategy", "no")


@pytest.fixture(scope="module")
def zero3(tiny):
    out = tiny[0] / "zero3"
    return out, launch(tiny, 3, out, "--save_steps", CHECKPOINT, "--save_total_limit", 2)


@pytest.fixture(scope="module")
def resumed(tiny, zero3):
    out = tiny[0] / "zero3-resumed"
    shutil.copytree(zero3[0] / f"checkpoint-{CHECKPOINT}", out / f"checkpoint-{CHECKPOINT}")
    return out, launch(tiny, 3, out, "--save_steps", CHECKPOINT, "--save_total_limit", 2, "--resume")


@pytest.fixture(scope="module")
def evaluated(tiny, zero2):
    tmp, out = tiny[0], zero2[0]
    env = trace_env(tmp / "trace.jsonl", tmp / "hook", target="transformers:LlavaForConditionalGeneration")
    env.update(SUBPROCESS_ENV, UNISIM_DATA_DIR=str(tmp / "unisim"))
    tasks = ",".join(f"unisim_mini_{s}" for s in EVAL_SETS)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lmms-eval")), "--model", "llava_hf", "--model_args",
         f"pretrained={out},device_map=cpu,device=cpu", "--tasks", tasks, "--batch_size", "1",
         "--output_path", str(tmp / "eval")],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=600,
    )  # fmt: skip
    files = sorted((tmp / "eval").glob("**/*_results.json"))
    assert files, (done.stdout + done.stderr)[-5000:]  # lmms-eval exits 0 also when it fails
    return json.loads(files[-1].read_text())["results"], read_trace(tmp / "trace.jsonl")


def history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


# -- the deepspeed runs -----------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["zero2", "zero3"])
def test_two_cpu_ranks_train_and_the_loss_falls(run, request):
    out, log = request.getfixturevalue(run)
    # both ranks reached the trainer and accelerate counts both (not one run per rank)
    assert re.search(r"2 processes \(DistributedType\.DEEPSPEED, gloo\): rank 0 on cpu\S*; rank 1 on cpu", log), log[-3000:]
    assert "shm_comm" not in log  # DeepSpeed's CPU collectives op was not compiled
    losses = [h["loss"] for h in history(out) if "loss" in h]
    assert len(losses) == STEPS // 4
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("run, optimizer", [("zero2", "DeepSpeedZeroOptimizer"), ("zero3", "DeepSpeedZeroOptimizer_Stage3")])
def test_both_learning_rates_reach_the_deepspeed_optimizer(run, optimizer, request, tiny):
    out, log = request.getfixturevalue(run)
    groups = re.findall(r"parameter group \d: lr (\S+), weight decay 0, (\d+) tensors \((\d+) of the vision tower\)", log)
    from transformers import AutoConfig, LlavaForConditionalGeneration

    names = [n for n, _ in LlavaForConditionalGeneration(AutoConfig.from_pretrained(tiny[1])).named_parameters()]
    vision = sum(llnext.is_vision_tower(n) for n in names)
    assert 0 < vision < len(names)
    per_lr = {}
    for lr, tensors, of_vision in groups:
        per_lr.setdefault(float(lr), []).append((int(tensors), int(of_vision)))
    assert sorted(per_lr) == [VISION_LR, LR]
    assert all(t == v for t, v in per_lr[VISION_LR]) and sum(t for t, _ in per_lr[VISION_LR]) == vision
    assert all(v == 0 for _, v in per_lr[LR]) and sum(t for t, _ in per_lr[LR]) == len(names) - vision
    # the optimizer DeepSpeed steps holds the same groups, and the schedule moves both alike
    reported = re.search(rf"optimizer {optimizer}: (\d+) parameter groups, lr (.*)", log)
    assert reported and [float(x) for x in reported.group(2).split(", ")] == [float(lr) for lr, _, _ in groups]
    logged = [h for h in history(out) if "loss" in h]
    assert 0.9 * LR < logged[0]["learning_rate"] <= LR
    for h in logged:
        assert h["learning_rate_vision_tower"] == pytest.approx(h["learning_rate"] * VISION_LR / LR, rel=1e-6)


def test_zero3_saves_the_model_zero2_saves_under_the_base_checkpoints_names(zero2, zero3, tiny):
    two, three = weights(zero2[0]), weights(zero3[0])
    assert set(three) == set(two) == set(weights(Path(tiny[1])))
    assert max((two[k] - three[k]).abs().max().item() for k in two) < 1e-4  # one trajectory, two stages
    assert (zero3[0] / f"checkpoint-{CHECKPOINT}").is_dir() and (zero3[0] / f"checkpoint-{STEPS}").is_dir()


def test_resuming_from_the_checkpoint_ends_where_the_uninterrupted_run_ends(zero3, resumed):
    assert f"resuming from {resumed[0] / f'checkpoint-{CHECKPOINT}'}" in resumed[1]
    assert resumed[1].count("{'loss':") == (STEPS - CHECKPOINT) // 4  # only the steps after the checkpoint ran
    full, again = history(zero3[0]), history(resumed[0])
    later = {h["step"]: h["loss"] for h in full if "loss" in h and h["step"] > CHECKPOINT}
    assert len(later) == (STEPS - CHECKPOINT) // 4
    assert {h["step"]: h["loss"] for h in again if "loss" in h and h["step"] > CHECKPOINT} == pytest.approx(later)
    a, b = weights(zero3[0]), weights(resumed[0])
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


# -- the trained model through lmms-eval --------------------------------------------------------------
def test_the_trained_model_answers_the_mini_brightness_sets_through_lmms_eval(evaluated):
    results, _ = evaluated
    for eval_set in EVAL_SETS:
        assert f"unisim_mini_{eval_set}" in results
    for eval_set in ("paa_sice_brightness", "paa_koniq_brightness"):
        assert results[f"unisim_mini_{eval_set}"]["unparsed,none"] == 0.0  # the random base never answers


def test_evaluation_prompts_have_every_image_in_place_and_match_the_training_layout(evaluated, zero2, tiny):
    from transformers import AutoProcessor

    from unisim_tasks.data.store import load_eval_set
    from unisim_tasks.tasks import utils

    _, records = evaluated
    processor = AutoProcessor.from_pretrained(zero2[0])
    tokenizer = processor.tokenizer
    expected = []
    for eval_set in EVAL_SETS:
        for doc in load_eval_set(eval_set, data_dir=tiny[0] / "unisim", mini=True):
            expected.append(utils.doc_to_text(doc))
    assert len(records) == len(expected)
    seen = []
    for rec in records:
        (ids,) = rec["input_ids"]
        runs = image_runs(ids, rec["image_token_id"])
        text, pos = "", 0
        for start, length in runs:
            text += tokenizer.decode(ids[pos:start]) + "<image>" * (length // TOKENS_PER_IMAGE)
            assert length % TOKENS_PER_IMAGE == 0
            pos = start + length
        text += tokenizer.decode(ids[pos:])
        assert text.startswith(USER) and text.endswith(ASSISTANT)
        assert rec["num_images"] == text.count("<image>")
        seen.append(text[len(USER) : -len(ASSISTANT)])
    assert sorted(seen) == sorted(expected)

    # a planted training sample's prompt is token for token what lmms-eval sends for the same question
    _, _, data, images = tiny
    encoded = build_dataset(str(data), str(images), ConversationEncoder(processor), 4096, skip_missing_images=False)[0]
    first_learned = encoded["labels"].ne(IGNORE_INDEX).nonzero()[0].item()
    training_prompt = encoded["input_ids"][:first_learned].tolist()
    brightness = [r["input_ids"][0] for r, t in zip(records, seen) if "is brighter" in t]
    assert brightness and all(ids == training_prompt for ids in brightness)


# -- in this process: labels, groups, defaults, bad input --------------------------------------------
@pytest.fixture(scope="module")
def processor(tiny):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny[1])


def record(i, images, turns):
    return {"id": f"s{i}", "image": images, "conversations": [{"from": f, "value": v} for f, v in turns]}


def test_labels_cover_the_answers_and_their_end_tokens_only(processor):
    encoder = ConversationEncoder(processor)
    tok = processor.tokenizer
    first = parse_record(record(0, ["a", "b"], [("human", "Two: <image><image> which?"), ("gpt", "A"),
                                                ("human", "Sure?"), ("gpt", "Yes, A.")]), 0, Path("."), "<image>")  # fmt: skip
    second = parse_record(record(1, ["c"], [("system", "Be brief."), ("human", "<image> dark?"), ("gpt", "No")]),
                          1, Path("."), "<image>")  # fmt: skip
    blank = Image.new("RGB", (40, 30))
    batch = ConversationCollator(tok.pad_token_id)([encoder.encode(first, [blank, blank]), encoder.encode(second, [blank])])
    assert batch["pixel_values"].shape[0] == 3
    image_id = tok.convert_tokens_to_ids("<image>")
    for row, answers, images in ((0, "A<|im_end|>Yes, A.<|im_end|>", 2), (1, "No<|im_end|>", 1)):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        learned = labels.ne(IGNORE_INDEX)
        assert torch.equal(labels[learned], ids[learned])
        assert tok.decode(ids[learned]) == answers
        assert (ids[mask.bool()] == image_id).sum() == images * TOKENS_PER_IMAGE
        assert not learned[ids == image_id].any() and not learned[~mask.bool()].any()
    # the system and user turns, template tokens and images are all there, unlearned
    text = tok.decode(batch["input_ids"][1][batch["attention_mask"][1].bool()])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<image>")


def test_a_llava_onevision_base_trains_on_multi_and_single_image_samples(tmp_path):
    from transformers import AutoProcessor

    base = make_tiny_llava_onevision(tmp_path / "ov", reply=None)
    processor = AutoProcessor.from_pretrained(base)
    encoder = ConversationEncoder(processor)
    two = parse_record(record(0, ["a", "b"], [("human", "<image> vs <image>?"), ("gpt", "B")]), 0, tmp_path, "<image>")
    one = parse_record(record(1, ["c"], [("human", "Is <image> wide?"), ("gpt", "Yes")]), 1, tmp_path, "<image>")
    samples = [encoder.encode(two, [Image.new("RGB", (28, 28)), Image.new("RGB", (56, 28))]),
               encoder.encode(one, [Image.new("RGB", (56, 56))])]  # fmt: skip
    assert len(samples[0]["input_ids"]) == encoder.length(two, ((28, 28), (56, 28)))
    assert len(samples[1]["input_ids"]) == encoder.length(one, ((56, 56),))
    batch = ConversationCollator(processor.tokenizer.pad_token_id)(samples)
    model = llnext.load_model(llnext.base_model_class(str(base)), str(base))
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and model.get_input_embeddings().weight.grad.abs().sum() > 0
    tok = processor.tokenizer
    assert [tok.decode(b[l.ne(IGNORE_INDEX)]) for b, l in zip(batch["input_ids"], batch["labels"])] == [
        "B<|im_end|>", "Yes<|im_end|>"]  # fmt: skip


def test_the_defaults_are_the_papers_and_switch_off_bf16_and_checkpointing_without_cuda(tiny, tmp_path):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((llnext.ModelArguments, llnext.DataArguments, llnext.TrainingArguments))
    _, _, args = parser.parse_args_into_dataclasses(
        ["--model_name_or_path", str(tiny[1]), "--data_path", "d.json", "--output_dir", str(tmp_path)]
    )
    assert (args.learning_rate, args.mm_vision_tower_lr, args.weight_decay) == (1e-5, 2e-6, 0.0)
    assert (args.warmup_steps, args.lr_scheduler_type, args.num_train_epochs) == (0.03, "cosine", 1.0)
    assert not torch.cuda.is_available()
    assert (args.bf16, args.activation_checkpointing, args.use_cpu) == (False, False, True)


def test_the_vision_tower_gets_its_own_learning_rate_in_the_trainers_optimizer(tiny, tmp_path):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((llnext.ModelArguments, llnext.DataArguments, llnext.TrainingArguments))
    argv = ["--model_name_or_path", str(tiny[1]), "--data_path", "d.json", "--output_dir", str(tmp_path),
            "--weight_decay", "0.1", "--report_to", "none"]  # fmt: skip
    _, _, args = parser.parse_args_into_dataclasses(argv)
    model = llnext.load_model(llnext.base_model_class(str(tiny[1])), str(tiny[1]))
    optimizer = llnext.LLNextTrainer(model=model, args=args).create_optimizer()
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert len(group_of) == sum(1 for _ in model.parameters())
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        assert group["lr"] == (2e-6 if "vision_tower" in name else 1e-5), name
        assert group["weight_decay"] == (0.0 if name.endswith("bias") or "norm" in name else 0.1), name


def run_main(argv) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = llnext.main(list(map(str, argv)))
    return code, err.getvalue()


def test_a_sample_whose_image_marks_and_images_differ_is_named(tiny, tmp_path):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([record(0, ["x.png"], [("human", "<image> <image>"), ("gpt", "A")]),
                                record(7, ["x.png", "y.png"], [("human", "<image> only"), ("gpt", "A")])]))  # fmt: skip
    code, err = run_main(["--model_name_or_path", tiny[1], "--data_path", data, "--output_dir", tmp_path / "o"])
    assert code == 2 and "sample s0: 2 <image> marks in its turns but 1 images" in err


def test_missing_images_are_counted_and_stop_the_run_unless_skipped(tiny, processor, tmp_path, caplog):
    _, _, data, images = tiny
    records = json.loads(data.read_text())[:5]
    records[1]["image"][0] = records[3]["image"][1] = "gone.png"
    bad = tmp_path / "missing.json"
    bad.write_text(json.dumps(records))
    code, err = run_main(["--model_name_or_path", tiny[1], "--data_path", bad, "--image_folder", images,
                          "--output_dir", tmp_path / "o"])  # fmt: skip
    assert code == 2 and "2 of 5 samples have missing or unreadable image files" in err and "--skip_missing_images" in err
    with caplog.at_level("WARNING"):
        dataset = build_dataset(str(bad), str(images), ConversationEncoder(processor), 4096, skip_missing_images=True)
    assert len(dataset) == 3 and "2 of 5 samples have missing" in caplog.text


def test_samples_longer_than_the_limit_are_left_out_and_counted(tiny, processor, caplog):
    _, _, data, images = tiny
    encoder = ConversationEncoder(processor)
    records = json.loads(data.read_text())[:4]
    records[2]["conversations"][0]["value"] += " Think it over." * 20
    limit = encoder.length(parse_record(records[0], 0, images, "<image>"), ((64, 64), (64, 64)))
    data4 = images.parent / "long.json"
    data4.write_text(json.dumps(records))
    with caplog.at_level("WARNING"):
        dataset = build_dataset(str(data4), str(images), encoder, limit, skip_missing_images=False)
    assert [s.id for s in dataset.samples] == [records[i]["id"] for i in (0, 1, 3)]
    assert f"1 of 4 samples are longer than --model_max_length {limit} tokens" in caplog.text
    assert len(dataset[0]["input_ids"]) == limit


def test_an_unknown_base_model_class_is_a_clear_error(tmp_path):
    from transformers import Qwen2Config

    Qwen2Config(architectures=["Qwen2ForCausalLM"]).save_pretrained(tmp_path / "qwen")
    code, err = run_main(["--model_name_or_path", tmp_path / "qwen", "--data_path", "d.json", "--output_dir", tmp_path / "o"])
    assert code == 2 and "model class Qwen2ForCausalLM (model_type qwen2) is not one this trainer fine-tunes" in err


def test_a_deepspeed_optimizer_block_that_would_drop_the_vision_lr_is_refused(tiny, tmp_path):
    from transformers.integrations import unset_hf_deepspeed_config

    config = json.loads((CONFIGS / "zero2.json").read_text())
    config["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}}
    (tmp_path / "ds.json").write_text(json.dumps(config))
    try:
        code, err = run_main(["--model_name_or_path", tiny[1], "--data_path", "d.json", "--output_dir", tmp_path / "o",
                              "--deepspeed", tmp_path / "ds.json"])  # fmt: skip
    finally:
        unset_hf_deepspeed_config()
    assert code == 2 and '"optimizer" block' in err and "--mm_vision_tower_lr would be lost" in err


def test_an_earlier_runs_checkpoints_need_resume_and_resume_needs_a_checkpoint(tiny, tmp_path):
    args = ["--model_name_or_path", tiny[1], "--data_path", tiny[2], "--output_dir", tmp_path / "o"]
    code, err = run_main([*args, "--resume"])
    assert code == 2 and "--resume: --output_dir" in err and "holds no checkpoint" in err
    (tmp_path / "o" / "checkpoint-3").mkdir(parents=True)
    code, err = run_main(args)
    assert code == 2 and "holds checkpoints of an earlier run (last: checkpoint-3): pass --resume" in err


def test_a_turn_structure_the_trainer_cannot_learn_from_is_named():
    for turns, why in (
        ([("human", "hi")], "end with a gpt turn"),
        ([("gpt", "A"), ("human", "hi")], "alternate"),
        ([("human", "<image>"), ("gpt", "see <image>")], "a gpt turn holds <image>"),
        ([("robot", "hi"), ("gpt", "A")], "a turn must be"),
    ):
        with pytest.raises(TrainingError, match=f"sample s3: .*{re.escape(why)}"):
            parse_record(record(3, ["x"] * sum(v.count("<image>") for _, v in turns), turns), 3, Path("."), "<image>")
