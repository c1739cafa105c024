"""Training throughput of the CLIP LoRA trainer vs the authors' loop shape, on the CPU.

Model: an HF CLIPModel with ViT-B/32's shape (CLIPConfig's defaults: 224 px, 32 px patches, 12
layers of width 768; text tower of width 512) and seeded random weights, LoRA r=16 on the vision
tower. Data: one training set per core task in the canonical format, written through the store,
JPEG photos-sized images (default 256x256). Each measurement runs in a fresh process (peak RSS).

- loader: the trainer's DataLoader alone (decode + preprocess + tokenize), samples/s with 0 workers
  (the main process) and with W workers, and per worker;
- train, per task and for all four together: the trainer's loop (one step = one batch of every task,
  each task's batch one vision forward, decoding in DataLoader workers, through accelerate) vs
  the authors' loop shape (per task one triplet batch, reference and each alternative a forward of
  its own, decoded in the main process); samples/s, the ratio, peak RSS.

It ends with the number of loader workers a GPU needs: the GPU's training rate (samples/s,
``--gpu-samples-per-s``, an estimate unless you measured one) over the measured samples/s of one
worker.

    python benchmarks/clip_train_throughput.py [--batch-size 8] [--steps 3] [--workers 1] [--image-size 256]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.tiny_clip: the offline CLIP tokenizer

TASKS = {"img2afc": "nights", "it2afc": "hqedit", "text2afc": "polaris", "iqa": "kadid10k"}
# ViT-B/32 fwd + bwd (input gradients through every layer, weight gradients for LoRA only) is about
# 3 x 4.4 GFLOP per 224 px image; an A100 at a sustained ~100 TFLOP/s in bf16 gives ~7500 images/s,
# and a training sample of the four tasks averages 2 images (3, 2, 1, 2): ~3700 samples/s
DEFAULT_GPU_RATE = 3700.0


def make_model(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from tests.tiny_clip import _clip_tokenizer

    out = folder / "vit-b32-random"
    if (out / "config.json").is_file():
        return out
    tokenizer = _clip_tokenizer(77)
    config = CLIPConfig(text_config={"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id})  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def _jpeg(rng, size: int):
    from PIL import Image

    from unisim_tasks.data.schema import ImageBytes

    # smooth colour fields plus noise: decodes like a photo (a pure-noise JPEG is several times larger)
    low = rng.uniform(0, 255, (8, 8, 3))
    field = np.kron(low, np.ones((size // 8, size // 8, 1))) + rng.normal(0, 12, (size, size, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return ImageBytes(buf.getvalue(), "x.jpg")


def make_data(root: Path, n: int, size: int) -> None:
    from unisim_tasks.data.builder import Builder
    from unisim_tasks.data.schema import sample
    from unisim_tasks.data.store import build_eval_set

    class Synthetic(Builder):
        raw_folder = "synthetic"

        def __init__(self, dataset, eval_set):
            self.name, self.outputs = dataset, {"train": {eval_set: n}}

        def candidates(self, ctx, eval_set):
            task, dataset = eval_set.split("_", 1)
            rng = np.random.default_rng(len(task))
            for i in range(n):
                kw = {"uid": f"{i}", "task": task, "dataset": dataset, "label": i % 2}
                if task == "img2afc":
                    yield sample(**kw, ref_image=_jpeg(rng, size), images=[_jpeg(rng, size), _jpeg(rng, size)])
                elif task == "it2afc":
                    yield sample(**kw, ref_text=f"a photo number {i}", images=[_jpeg(rng, size), _jpeg(rng, size)])
                elif task == "text2afc":
                    yield sample(**kw, ref_image=_jpeg(rng, size), texts=[f"caption {i}", f"another caption {i}"])
                else:
                    yield sample(**kw, images=[_jpeg(rng, size), _jpeg(rng, size)])

    for task, dataset in TASKS.items():
        eval_set = f"{task}_{dataset}"
        build_eval_set(Synthetic(dataset, eval_set), eval_set, "train", raw_root=None, root=root)


def _config(args, tasks):
    from unisim_models.training import resolve_config

    flags = ["--base-model", args.model, "--data-dir", args.data_dir, "--output-dir", str(Path(args.data_dir) / "o"),
             "--batch-size", str(args.batch_size), "--samples-per-task", str(args.batch_size * (args.steps + 1)),
             "--num-workers", str(args.workers), "--report-to", "none"]  # fmt: skip
    for task in TASKS:
        flags += ["--datasets", f"{task}={TASKS[task]}"] if task in tasks else ["--drop-task", task]
    return resolve_config(flags)


def _loader(config, data, plan, processor, workers):
    from torch.utils.data import DataLoader

    from unisim_models.training.data import MicroBatches

    batches = MicroBatches(data, plan, 0, 0, plan.steps, processor, 77, config.iqa_prompt)
    return DataLoader(batches, batch_size=None, num_workers=workers, generator=torch.Generator())


def probe(args) -> dict:
    """Child process: one measurement; returns samples/s and the peak RSS."""
    from unisim_models.training.data import build_plan, load_training_data
    from unisim_models.training.model import UniSimLoss, add_lora, hinge_loss, load_base

    tasks = list(TASKS) if args.task == "all" else [args.task]
    config = _config(args, tasks)
    data = load_training_data(config)
    plan = build_plan(config, data, world_size=1)
    clip, processor = load_base(config.base_model)
    samples_per_step = config.batch_size * len(tasks)
    if args.probe == "loader":
        it = iter(_loader(config, data, plan, processor, args.workers))
        next(it)  # workers started, first batch in
        start = time.perf_counter()
        for _ in range(args.steps):
            next(it)
        elapsed = time.perf_counter() - start
    else:
        add_lora(clip, config)
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True, gradient_accumulation_steps=len(tasks))
        module = UniSimLoss(clip, config.margin)
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr)
        model, optimizer = accelerator.prepare(module, optimizer)
        model.train()
        if args.probe == "train":
            step_fn = _trainer_steps(accelerator, model, optimizer, _loader(config, data, plan, processor, args.workers))
        else:
            step_fn = _naive_steps(module, optimizer, data, plan, processor, config, hinge_loss)
        next(step_fn)  # a warm-up step
        start = time.perf_counter()
        for _ in range(args.steps):
            next(step_fn)
        elapsed = time.perf_counter() - start
    return {"samples_per_s": samples_per_step * args.steps / elapsed,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def _trainer_steps(accelerator, model, optimizer, loader):
    """The trainer's loop body (``unisim_models.training.trainer.train``)."""
    from accelerate.utils import send_to_device

    for batch in loader:
        batch = send_to_device(batch, accelerator.device)
        for task, inputs in batch.items():
            with accelerator.accumulate(model):
                accelerator.backward(model(task, **inputs) * len(batch))
                optimizer.step()
                optimizer.zero_grad()
        yield


def _naive_steps(module, optimizer, data, plan, processor, config, hinge_loss):
    """The authors' loop shape: per task a triplet batch decoded in the main process, the reference and
    each alternative encoded by a forward of its own."""
    from unisim_models.training.data import _decode

    def texts(values):
        enc = processor.tokenizer(values, padding=True, truncation=True, max_length=77, return_tensors="pt")
        return module.text_embeddings(enc["input_ids"], enc["attention_mask"])

    def images(values):
        return module.image_embeddings(processor.image_processor(images=[_decode(v) for v in values], return_tensors="pt")["pixel_values"])

    for step in range(plan.steps):
        for task, rows in plan.indices(step, 0, 0).items():
            records = data[task].samples[rows.tolist()].to_pylist()
            labels = torch.tensor([r["label"] for r in records])
            if task == "img2afc":
                ref = images([r["ref_image"] for r in records])
            elif task == "text2afc":
                ref = images([r["ref_image"] for r in records])
            elif task == "it2afc":
                ref = texts([r["ref_text"] for r in records])
            else:
                ref = texts([config.iqa_prompt] * len(records))
            if task == "text2afc":
                alts = [texts([r["texts"][k] for r in records]) for k in (0, 1)]
            else:
                alts = [images([r["images"][k] for r in records]) for k in (0, 1)]
            sims = torch.stack([(ref * a).sum(-1) for a in alts], dim=1)
            hinge_loss(sims, labels, config.margin).backward()
        optimizer.step()
        optimizer.zero_grad()
        yield


def child(args, **overrides) -> dict:
    flags = {**vars(args), **overrides}
    cmd = [sys.executable, __file__, "--json"]
    for key, value in flags.items():
        if key not in ("json", "gpu_samples_per_s") and value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"probe {overrides} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8, help="per task and step (paper: 32)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of the trainer's loader")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--gpu-samples-per-s", type=float, default=DEFAULT_GPU_RATE,
                   help=f"the GPU training rate the worker count is sized for (default {DEFAULT_GPU_RATE:.0f}, an estimate)")  # fmt: skip
    # a child's settings
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--probe", choices=("loader", "train", "naive"), help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.json:
        torch.set_num_threads(args.threads)
        print(json.dumps(probe(args)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        args.model, args.data_dir = str(make_model(tmp)), str(tmp / "data")
        make_data(tmp / "data", args.batch_size * (args.steps + 1), args.image_size)
        print(f"ViT-B/32-shaped random CLIPModel, CPU, {args.threads} torch thread(s) per process, batch {args.batch_size} "
              f"per task, {args.steps} timed steps, {args.image_size}px JPEG images")  # fmt: skip
        loader0 = child(args, probe="loader", task="all", workers=0)
        loaderw = child(args, probe="loader", task="all")
        per_worker = loaderw["samples_per_s"] / max(1, args.workers)
        print(f"loader (decode + preprocess), all tasks: main process {loader0['samples_per_s']:.1f} samples/s; "
              f"{args.workers} worker(s) {loaderw['samples_per_s']:.1f} samples/s, {per_worker:.1f} per worker")  # fmt: skip
        print(f"{'task':<10}{'trainer samples/s':>20}{'authors-shape samples/s':>26}{'ratio':>8}{'peak RSS MiB (trainer / authors)':>36}")
        for task in (*TASKS, "all"):
            ours, naive = child(args, probe="train", task=task), child(args, probe="naive", task=task)
            print(f"{task:<10}{ours['samples_per_s']:>20.2f}{naive['samples_per_s']:>26.2f}"
                  f"{ours['samples_per_s'] / naive['samples_per_s']:>8.2f}"
                  f"{ours['peak_rss_mib']:>24.0f} / {naive['peak_rss_mib']:.0f}")  # fmt: skip
        need = args.gpu_samples_per_s / loader0["samples_per_s"]
        print(f"loader workers for a GPU training at {args.gpu_samples_per_s:.0f} samples/s: "
              f"{need:.0f} (one worker decodes {loader0['samples_per_s']:.1f} samples/s on one core)")  # fmt: skip


if __name__ == "__main__":
    main()
