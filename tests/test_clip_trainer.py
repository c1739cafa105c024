"""The CLIP LoRA trainer (``train/clip_lora.py``, ``unisim_models.training``) on a tiny random HF
CLIPModel and planted training sets written through the package's store in the canonical format.

Planted rule: images are a colour plus a grey pixel pattern. Img-2AFC: the closer alternative has
the reference's colour but another pattern, the other one the reference's pattern in another
colour (an untrained model leans on the shared pixels). IT-2AFC / Text-2AFC: the caption is the
colour's name. IQA: the better image is the clean one, the other drowned in noise.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.tiny_clip import make_hf_clip
from unisim_tasks.data.builder import Builder
from unisim_tasks.data.schema import ImageBytes, sample
from unisim_tasks.data.store import build_eval_set

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train" / "clip_lora.py"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
# the planted training sets: one per task, the eval set a (task, dataset) pair the trainer accepts
PLANTED = {"img2afc": "nights", "it2afc": "hqedit", "text2afc": "polaris", "iqa": "kadid10k"}
DATASET_FLAGS = [f for t, d in PLANTED.items() for f in ("--datasets", f"{t}={d}")]


def _png(array: np.ndarray, name: str) -> ImageBytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return ImageBytes(buf.getvalue(), name)


def _image(colour: str, pattern: np.ndarray, uid: str, amplitude: float = 70.0, tint: float = 1.0) -> ImageBytes:
    base = 128 + tint * (np.array(COLOURS[colour], dtype=np.float64) - 128)
    return _png(np.clip(base + amplitude * pattern[..., None], 0, 255), f"{uid}.png")


def planted_records(task: str, dataset: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    for i in range(n):
        uid = f"{task}/{seed}/{i:04d}"
        c1, c2 = rng.choice(names, 2, replace=False)
        p1, p2 = rng.uniform(-1, 1, (2, 16, 16))
        flip = int(rng.integers(2))
        if task == "img2afc":
            q1, q2 = (np.kron(np.sign(p[:4, :4]), np.ones((4, 4))) for p in (p1, p2))  # coarse, strong patterns
            ref = _image(c1, q1, uid + "r", 120.0, 0.15)
            good, bad = _image(c1, q2, uid + "a", 120.0, 0.15), _image(c2, q1, uid + "b", 120.0, 0.15)
            alts = [bad, good] if flip else [good, bad]
            yield sample(uid=uid, task=task, dataset=dataset, label=flip, ref_image=ref, images=alts)
        elif task == "it2afc":
            good, bad = _image(c1, p1, uid + "a"), _image(c2, p2, uid + "b")
            alts = [bad, good] if flip else [good, bad]
            yield sample(uid=uid, task=task, dataset=dataset, label=flip, ref_text=str(c1), images=alts)
        elif task == "text2afc":
            texts = [str(c2), str(c1)] if flip else [str(c1), str(c2)]
            yield sample(uid=uid, task=task, dataset=dataset, label=flip, ref_image=_image(c1, p1, uid + "r"), texts=texts)
        else:
            clean, noisy = _image(c1, p1, uid + "a", 10.0), _image(c1, rng.uniform(-1, 1, (16, 16)) * 3, uid + "b")
            alts = [noisy, clean] if flip else [clean, noisy]
            yield sample(uid=uid, task=task, dataset=dataset, label=flip, images=alts)


class PlantedBuilder(Builder):
    raw_folder = "planted"  # not None: written where the real dataset's sets go, not under mini/

    def __init__(self, dataset: str, eval_set: str, split: str, n: int, seed: int) -> None:
        self.name, self.outputs = dataset, {split: {eval_set: n}}
        self.eval_set, self.n, self.seed = eval_set, n, seed

    def candidates(self, ctx, eval_set):
        task, dataset = eval_set.split("_", 1)
        return planted_records(task, dataset, self.n, self.seed)


def write_planted(root: Path, eval_set: str, split: str, n: int, seed: int) -> None:
    dataset = eval_set.split("_", 1)[1]
    build_eval_set(PlantedBuilder(dataset, eval_set, split, n, seed), eval_set, split, raw_root=None, root=root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip_trainer")
    base = make_hf_clip(tmp)
    data = tmp / "data"
    for i, (task, dataset) in enumerate(PLANTED.items()):
        write_planted(data, f"{task}_{dataset}", "train", 48, seed=100 + i)
    return tmp, base, data


def run_trainer(args, env=None, launcher=None, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": "1", **(env or {})}  # fmt: skip
    cmd = [*(launcher or [sys.executable]), str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def tiny_args(base, data, out, *extra, samples=32, batch=8):
    return ["--base-model", base, "--data-dir", data, "--output-dir", out, "--batch-size", batch,
            "--samples-per-task", samples, *DATASET_FLAGS, "--lr", "1e-3", "--warmup-steps", 2, "--num-workers", 0,
            "--report-to", "none", *extra]  # fmt: skip


def config_for(base, data, out, *extra, **kw):
    from unisim_models.training import resolve_config

    return resolve_config(list(map(str, tiny_args(base, data, out, *extra, **kw))))


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


# -- the loss -------------------------------------------------------------------------------------
def test_loss_equals_a_direct_computation_of_eq1_on_a_fixed_batch_of_each_task(tiny, tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    from unisim_models.training.data import MicroBatches, build_plan, load_training_data
    from unisim_models.training.model import UniSimLoss, add_lora, load_base

    tmp, base, data = tiny
    config = config_for(base, data, tmp_path / "out", "--margin", "0.3")
    sets = load_training_data(config)
    plan = build_plan(config, sets, world_size=1)
    clip, processor = load_base(str(base))
    add_lora(clip, config)
    with torch.no_grad():  # non-zero LoRA B, so the adapter takes part in the forward
        for name, param in clip.vision_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    module = UniSimLoss(clip, config.margin).eval()
    batch = MicroBatches(sets, plan, 0, 0, 1, processor, 16, config.iqa_prompt)[0]
    assert set(batch) == set(PLANTED)
    losses = {task: module(task, **inputs) for task, inputs in batch.items()}

    # direct: the merged model through HF's own feature functions, sample by sample, Eq. 1 written out
    direct = CLIPModel.from_pretrained(str(base)).eval()
    clip.vision_model.eval()
    direct.vision_model = clip.vision_model.merge_and_unload()
    proc = CLIPProcessor.from_pretrained(str(base), backend="pil")  # the image backend unisim_clip evaluates with

    def emb_image(record_value):
        pixels = proc(images=[Image.open(io.BytesIO(record_value["bytes"])).convert("RGB")], return_tensors="pt")
        out = direct.get_image_features(pixel_values=pixels["pixel_values"])
        return torch.nn.functional.normalize(getattr(out, "pooler_output", out)[0], dim=0)

    def emb_text(text):
        enc = proc.tokenizer([text], truncation=True, max_length=16, return_tensors="pt")
        out = direct.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return torch.nn.functional.normalize(getattr(out, "pooler_output", out)[0], dim=0)

    with torch.no_grad():
        for task, rows in plan.indices(0, 0, 0).items():
            records = sets[task].samples[rows.tolist()].to_pylist()
            terms = []
            for r in records:
                if task == "img2afc":
                    ref, alts = emb_image(r["ref_image"]), [emb_image(v) for v in r["images"]]
                elif task == "it2afc":
                    ref, alts = emb_text(r["ref_text"]), [emb_image(v) for v in r["images"]]
                elif task == "text2afc":
                    ref, alts = emb_image(r["ref_image"]), [emb_text(t) for t in r["texts"]]
                else:
                    ref, alts = emb_text("A high quality photo."), [emb_image(v) for v in r["images"]]
                s0, s1 = float(ref @ alts[0]), float(ref @ alts[1])
                terms.append(max(0.0, (2 * r["label"] - 1) * (s0 - s1) + 0.3))
            assert float(losses[task]) == pytest.approx(sum(terms) / len(terms), abs=1e-5), task


# -- sample order -----------------------------------------------------------------------------------
def test_every_step_holds_batch_size_of_each_task_in_one_order_for_1_and_2_processes(tiny, tmp_path):
    from unisim_models.training.data import MicroBatches, build_plan, load_training_data

    tmp, base, data = tiny
    config = config_for(base, data, tmp_path / "out", samples=80)  # 48 per set: a second pass is needed
    sets = load_training_data(config)
    one = build_plan(config, sets, world_size=1)
    again = build_plan(config_for(base, data, tmp_path / "o2", samples=80), load_training_data(config), world_size=1)
    two = build_plan(config, sets, world_size=2)
    assert one.steps == two.steps == 10
    seen = {t: [] for t in sets}
    for step in range(one.steps):
        whole = one.indices(step, 0, 0)
        assert {t: len(v) for t, v in whole.items()} == {t: 8 for t in sets}
        halves = [two.indices(step, 0, r) for r in (0, 1)]
        for task in sets:
            assert np.array_equal(np.concatenate([h[task] for h in halves]), whole[task])
            assert np.array_equal(again.indices(step, 0, 0)[task], whole[task])
            seen[task] += whole[task].tolist()
    for task, order in seen.items():  # pass 0 is a permutation of all 48, pass 1 starts a new one
        assert sorted(order[:48]) == list(range(48)) and order[48:] != order[:32]
        assert order[:48] != list(range(48))
    # a different seed, a different order
    other = build_plan(config_for(base, data, tmp_path / "o3", "--seed", "1", samples=80), sets, world_size=1)
    assert not np.array_equal(other.indices(0, 0, 0)["img2afc"], one.indices(0, 0, 0)["img2afc"])

    # what the loader yields: the two ranks' micro-batches are the halves of the one-process batch
    from unisim_models.training.model import load_processor

    processor = load_processor(str(base), {})
    full = MicroBatches(sets, one, 0, 3, 4, processor, 16, config.iqa_prompt)[0]
    parts = [MicroBatches(sets, two, r, 3, 4, processor, 16, config.iqa_prompt)[0] for r in (0, 1)]
    for task in sets:
        assert torch.equal(torch.cat([p[task]["label"] for p in parts]), full[task]["label"])
        assert len(full[task]["label"]) == 8
    ref1 = parts[1]["img2afc"]["pixel_values"][parts[1]["img2afc"]["ref"]]
    assert torch.equal(ref1, full["img2afc"]["pixel_values"][full["img2afc"]["ref"][4:]])


def test_accumulation_and_world_size_share_out_the_same_global_batch(tiny, tmp_path):
    from unisim_models.training.data import build_plan, load_training_data

    tmp, base, data = tiny
    config = config_for(base, data, tmp_path / "out", "--gradient-accumulation-steps", "2")
    sets = load_training_data(config)
    single = build_plan(config_for(base, data, tmp_path / "o"), sets, world_size=1)
    split = build_plan(config, sets, world_size=2)  # 2 micro-batches x 2 ranks x 2 samples
    for step in range(single.steps):
        parts = [split.indices(step, a, r)["iqa"] for a in (0, 1) for r in (0, 1)]
        assert all(len(p) == 2 for p in parts)
        assert np.array_equal(np.concatenate(parts), single.indices(step, 0, 0)["iqa"])


# -- real runs (subprocesses) -------------------------------------------------------------------------
def lmms_eval_accuracy(tmp: Path, data: Path, model_args: str, out: Path) -> dict[str, float]:
    env = {**os.environ, "UNISIM_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    tasks = ",".join(f"unisim_{t}_{d}" for t, d in PLANTED.items())
    cmd = [str(Path(sys.executable).parent / "lmms-eval"), "--model", "unisim_clip", "--model_args", model_args,
           "--tasks", tasks, "--output_path", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
    files = sorted(out.glob("**/*_results.json"))
    assert files, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(files[-1].read_text())["results"]
    return {t: results[f"unisim_{t}_{d}"]["acc,none"] for t, d in PLANTED.items()}


def test_a_short_run_on_planted_data_raises_held_out_accuracy_through_unisim_clip(tiny, tmp_path):
    tmp, base, data = tiny
    for i, (task, dataset) in enumerate(PLANTED.items()):  # held out: other colours' patterns, other draws
        write_planted(data, f"{task}_{dataset}", "test", 40, seed=200 + i)
    out = tmp_path / "out"
    sets = ",".join(f"{t}_{d}" for t, d in PLANTED.items())
    done = run_trainer(tiny_args(base, data, out, "--lr", "3e-3", "--report-to", "tensorboard", "--merge",
                                 "--validate-every", 30, "--validation-sets", sets, "--num-workers", 1,
                                 samples=480, batch=16))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    untrained = lmms_eval_accuracy(tmp, data, f"hf_model={base}", tmp_path / "eval0")
    trained = lmms_eval_accuracy(tmp, data, f"hf_model={base},lora={out}", tmp_path / "eval1")
    for task in PLANTED:
        assert trained[task] >= 0.8 and trained[task] >= untrained[task] + 0.25, (task, untrained, trained)
    assert untrained["img2afc"] < 0.5  # the planted Img-2AFC rule is one the untrained model gets wrong

    # the trainer's validation scored the final adapter as lmms-eval did
    line = next(x for x in done.stdout.splitlines() + done.stderr.splitlines() if "step 30 validation:" in x)
    for task, dataset in PLANTED.items():
        assert f"{task}_{dataset} {trained[task]:.3f}" in line, line
    meta = json.loads((out / "unisim_training.json").read_text())
    assert meta["steps"] == meta["steps_per_epoch"] == 30 and meta["complete"] and meta["base_model"] == str(base)
    assert [s["eval_set"] for s in meta["training_sets"]["it2afc"]] == ["it2afc_hqedit"]
    assert len(meta["training_sets"]["iqa"][0]["manifest_sha256"]) == 64
    assert list((out / "logs").glob("**/events.out.tfevents.*"))  # the losses went to TensorBoard

    # --merge: the full model embeds images as base + adapter does
    from unisim_models.encoders import load_encoder
    from tests.tiny_clip import images

    pics = images(3)
    merged = load_encoder(hf_model=str(out / "merged")).encode_images(pics)
    adapted = load_encoder(hf_model=str(base), lora=str(out)).encode_images(pics)
    assert torch.allclose(merged, adapted, atol=1e-5)
    assert not torch.allclose(load_encoder(hf_model=str(base)).encode_images(pics), adapted, atol=1e-3)


def test_two_cpu_processes_end_with_the_one_process_adapter(tiny, tmp_path):
    tmp, base, data = tiny
    common = ["--lora-dropout", "0", "--checkpoint-every", 0]  # dropout masks are drawn per rank
    one = run_trainer(tiny_args(base, data, tmp_path / "one", *common))
    two = run_trainer(tiny_args(base, data, tmp_path / "two", *common),
                      launcher=[str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2"])  # fmt: skip
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert "rank 0 of 2" in two.stderr and "rank 1 of 2" in two.stderr, two.stderr[-3000:]
    assert "4 samples of each task per micro-batch" in two.stderr  # each rank took half of the batch of 8
    assert json.loads((tmp_path / "two" / "unisim_training.json").read_text())["world_size"] == 2
    a, b = adapter(tmp_path / "one"), adapter(tmp_path / "two")
    assert a.keys() == b.keys()
    lora_b = max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k)
    assert lora_b > 1e-3  # the steps moved the adapter away from its zero-B start
    for key in a:  # float sums in another order only: 2e-7 measured
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=0), key
    # the same global batch in 2 accumulation micro-batches
    accumulated = run_trainer(tiny_args(base, data, tmp_path / "acc", *common, "--gradient-accumulation-steps", 2))
    assert accumulated.returncode == 0, accumulated.stderr[-3000:]
    assert all(torch.allclose(a[k], v, atol=1e-5, rtol=0) for k, v in adapter(tmp_path / "acc").items())
    other = run_trainer(tiny_args(base, data, tmp_path / "seed1", *common, "--seed", 1))
    assert other.returncode == 0
    assert any(not torch.allclose(a[k], v, atol=1e-5, rtol=0) for k, v in adapter(tmp_path / "seed1").items())


def test_resume_from_a_checkpoint_gives_the_uninterrupted_adapter(tiny, tmp_path):
    tmp, base, data = tiny
    common = ["--checkpoint-every", 3]  # default LoRA dropout 0.2: the RNG state is restored too
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "run.json").write_text("{}")  # an earlier run there, replaced
    done = run_trainer(tiny_args(base, data, whole, *common, "--max-steps", 6, "--overwrite", samples=64))
    assert done.returncode == 0, done.stderr[-3000:]
    cut = tmp_path / "cut"
    first = run_trainer(tiny_args(base, data, cut, *common, "--max-steps", 3, samples=64))
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((cut / "unisim_training.json").read_text())["steps"] == 3
    again = run_trainer(tiny_args(base, data, cut, *common, "--max-steps", 6, "--resume", samples=64))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "steps 3-6 of 8" in again.stderr
    meta = json.loads((cut / "unisim_training.json").read_text())
    assert meta["steps"] == 6 and meta["steps_per_epoch"] == 8 and not meta["complete"]
    a, b = adapter(whole), adapter(cut)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [p.name for p in sorted((cut / "checkpoints").iterdir())] == ["step-00000003", "step-00000006"]


# -- bad input ------------------------------------------------------------------------------------------
def _fails(capsys, argv, message: str) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import clip_lora
    finally:
        sys.path.remove(str(SCRIPT.parent))
    capsys.readouterr()
    assert clip_lora.main(list(map(str, argv))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("clip_lora: error: ") and "Traceback" not in "\n".join(err), err
    assert message in err[-1], err[-1]


def _flags(base, data, out, *extra):
    return ["--base-model", base, "--data-dir", data, "--output-dir", out, "--batch-size", 8, "--samples-per-task", 32,
            "--report-to", "none", "--num-workers", 0, *extra]  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        # the defaults want NIGHTS + PIEAPP for Img-2AFC; the planted data has NIGHTS only
        ((), "img2afc_pieapp (unisim-bench prepare --dataset pieapp --split train --raw-dir DIR --data-dir "),
        (("--datasets", "it2afc=cifar100"), "unknown it2afc training dataset 'cifar100'; it2afc can train on hpdv2, hqedit, magicbrush"),
        (("--datasets", "ooo=cifar100"), "unknown task 'ooo'; the trained tasks are img2afc, it2afc, text2afc, iqa"),
        (("--drop-task", "paa"), "unknown task 'paa'"),
        (("--datasets", "iqa="), "no training dataset chosen for task iqa; choose some (--datasets iqa=D1,D2"),
        (("--lora-targets", "q_proj,qkv"), "LoRA target 'qkv' matches no linear layer of the vision tower"),
        (("--batch-size", "0"), "--batch-size must be >= 1"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line_errors_and_leave_nothing(tiny, tmp_path, capsys, extra, message):
    tmp, base, data = tiny
    planted = DATASET_FLAGS if extra else DATASET_FLAGS[2:]  # later --datasets of a task replace earlier ones
    _fails(capsys, _flags(base, data, tmp_path / "out", *planted, *extra), message)
    assert not (tmp_path / "out").exists()


def test_a_dropped_task_needs_no_dataset(tiny, tmp_path):
    from unisim_models.training import resolve_config

    tmp, base, data = tiny
    config = resolve_config(list(map(str, _flags(base, data, tmp_path / "o", *DATASET_FLAGS, "--datasets", "iqa=",
                                                 "--drop-task", "iqa"))))  # fmt: skip
    assert config.tasks == ["img2afc", "it2afc", "text2afc"]


def test_bad_base_models_and_output_dirs_are_one_line_errors(tiny, tmp_path, capsys):
    from tests.tiny_clip import make_hf_siglip

    tmp, base, data = tiny
    siglip = make_hf_siglip(tmp_path)
    _fails(capsys, _flags(siglip, data, tmp_path / "a", *DATASET_FLAGS), "is a 'siglip' model, not a CLIPModel")
    _fails(capsys, _flags("nobody/no-such-clip", data, tmp_path / "b", *DATASET_FLAGS), "is not in the hub cache")
    _fails(capsys, _flags(tmp_path / "missing", data, tmp_path / "c", *DATASET_FLAGS), "not found")
    assert not any((tmp_path / n).exists() for n in "abc")

    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text("{}")
    _fails(capsys, _flags(base, data, other, *DATASET_FLAGS), "holds another run; pass --resume to continue it or --overwrite")
    _fails(capsys, _flags(base, data, other, *DATASET_FLAGS, "--resume"), "holds no checkpoint to continue from")
    (other / "notes.txt").write_text("mine")
    (other / "run.json").unlink()
    _fails(capsys, _flags(base, data, other, *DATASET_FLAGS, "--overwrite"), "is not empty and holds no training run")
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-3\ncolour: red\n")
    _fails(capsys, ["--config", bad, *_flags(base, data, tmp_path / "d")], "unknown setting 'colour'")


def test_config_file_holds_the_paper_defaults_and_flags_override_it(tmp_path):
    from unisim_models.training import resolve_config
    from unisim_models.training.config import PAPER_DATASETS

    config = REPO / "train" / "configs" / "clip_lora_vit_b32.yaml"
    c = resolve_config(["--config", str(config), "--output-dir", str(tmp_path / "o")])
    assert c.base_model == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" and c.datasets == PAPER_DATASETS
    assert (c.batch_size, c.samples_per_task, c.lr, c.weight_decay, c.warmup_steps, c.margin) == (32, 400_000, 5e-6, 0.35, 500, 0.05)
    assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (16, 32, 0.2) and c.iqa_prompt == "A high quality photo."
    table4 = resolve_config(["--config", str(config), "--output-dir", "o", "--datasets", "it2afc=hqedit,hpdv2", "--lr", "1e-5"])
    assert table4.datasets["it2afc"] == ["hqedit", "hpdv2"] and table4.datasets["iqa"] == PAPER_DATASETS["iqa"]
    assert table4.lr == 1e-5
    l14 = resolve_config(["--config", str(REPO / "train" / "configs" / "clip_lora_vit_l14.yaml"), "--output-dir", "o"])
    assert l14.base_model == "openai/clip-vit-large-patch14-336" and l14.trajectory() | {"base_model": None} == c.trajectory() | {"base_model": None}
