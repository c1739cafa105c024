"""The training loop: accelerate for the processes, devices, mixed precision, accumulation, trackers
and checkpoints; the forward always through the prepared module.

Output folder (``--output-dir``)::

    run.json                  the run's settings and training sets, written at start
    checkpoints/step-00001000 accelerate save_state (model, optimizer, scheduler, RNG of every rank)
    logs/                     tracker logs (TensorBoard)
    adapter_config.json       \\ the peft adapter of the vision tower: lora=OUTPUT_DIR
    adapter_model.safetensors /
    unisim_training.json      base model, sets and manifest checksums, settings, steps, versions
    merged/                   with --merge: the full CLIPModel with the adapter merged, and its processor

The adapter and its metadata are written when the run ends (after ``--max-steps`` or the epoch),
weights last, so a folder whose adapter loads holds a finished run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from unisim_models.distributed import cores_per_process, process_mismatch, use_cpu_processes_without_cuda
from unisim_models.presets import TRAINER_METADATA

from .config import TrainConfig, TrainingError
from .data import MicroBatches, build_plan, load_training_data
from .model import UniSimLoss, add_lora, load_base
from .validation import check_prepared

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_STEP_DIR = "step-{:08d}"


def default_workers() -> int:
    """Decode workers per process: this process's share of the cores minus one for the loop, at most 8."""
    return max(0, min(8, cores_per_process() - 1))


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (a save still being written is named ``*.partial``)."""
    folder = output_dir / CHECKPOINTS
    found = []
    for path in folder.glob("step-*") if folder.is_dir() else ():
        if path.is_dir() and path.name[5:].isdigit():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def _versions() -> dict:
    out = {}
    for name in ("unisim-bench", "torch", "transformers", "peft", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _check_output_dir(config: TrainConfig, run: dict) -> str:
    """"fresh", "overwrite" or "resume"; refuses a folder holding something else or another run."""
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--output-dir {out} is a file")
    has_run = (out / RUN_FILE).is_file()
    if config.resume:
        if not has_run:
            raise TrainingError(f"--resume: {out} holds no training run ({RUN_FILE} not found)")
        if not checkpoints(out):
            raise TrainingError(f"--resume: {out} holds no checkpoint to continue from (in {out / CHECKPOINTS})")
        saved = json.loads((out / RUN_FILE).read_text())
        changed = sorted(k for k in ("settings", "training_sets") if saved.get(k) != run[k])
        if changed:
            diff = [k for k in run["settings"] if saved.get("settings", {}).get(k) != run["settings"][k]]
            what = ", ".join(diff) if diff else "the training sets (re-prepared since)"
            raise TrainingError(f"--resume: the run in {out} was started with other {what}; resume it with the same settings")
        return "resume"
    if out.is_dir() and any(out.iterdir()):
        if not has_run:
            raise TrainingError(f"--output-dir {out} is not empty and holds no training run; choose a new or empty folder")
        if not config.overwrite:
            raise TrainingError(f"--output-dir {out} holds another run; pass --resume to continue it or --overwrite to replace it")
        return "overwrite"
    return "fresh"


def _trackers(config: TrainConfig) -> list[str]:
    if config.report_to is not None:
        return [t for t in config.report_to if t != "none"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            return []
    return ["tensorboard"]


def train(config: TrainConfig) -> Path:
    """Run (or continue) a training; returns the output folder holding the adapter."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, send_to_device, set_seed
    from transformers import get_cosine_schedule_with_warmup

    out = Path(config.output_dir).expanduser()
    use_cpu_processes_without_cuda()
    # each task's micro-batch is a forward and backward of its own (the activations of one task at a
    # time, as in the authors' loop); accelerate syncs the gradients once, after the last of a step
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps * len(config.tasks),
        mixed_precision=config.mixed_precision,
        log_with=_trackers(config) or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        step_scheduler_with_optimizer=False,  # it would step once per process per step; stepped once below
    )  # fmt: skip
    main = accelerator.is_main_process
    mismatch = process_mismatch(accelerator)
    if mismatch:
        raise TrainingError(mismatch)

    data = load_training_data(config)
    run = {"settings": config.trajectory(), "training_sets": {t: d.sources for t, d in data.items()}}
    mode = _check_output_dir(config, run)
    if config.validate_every:
        check_prepared(config)
    plan = build_plan(config, data, accelerator.num_processes)
    if plan.steps < 1:
        raise TrainingError("--samples-per-task gives no full step")
    set_seed(config.seed)
    clip, processor = load_base(config.base_model)
    add_lora(clip, config)
    end_step = min(plan.steps, config.max_steps or plan.steps)
    if mode == "resume" and checkpoints(out)[-1][0] > end_step:
        raise TrainingError(f"--resume: the last checkpoint is at step {checkpoints(out)[-1][0]}, past --max-steps {end_step}")

    accelerator.wait_for_everyone()  # every rank checked its inputs before anything is written
    if main:
        if mode == "overwrite":
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        if mode != "resume":
            (out / RUN_FILE).write_text(json.dumps({**run, "base_model": config.base_model}, indent=1, sort_keys=True))
    accelerator.wait_for_everyone()

    module = UniSimLoss(clip, config.margin)
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, plan.steps)
    model, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)

    start_step = 0
    if mode == "resume":
        start_step, folder = checkpoints(out)[-1]
        accelerator.load_state(str(folder))
    accelerator.init_trackers("clip_lora", config={k: json.dumps(v) if isinstance(v, (list, dict)) else v
                                                   for k, v in config.trajectory().items()})  # fmt: skip

    workers = default_workers() if config.num_workers is None else config.num_workers
    print(
        f"clip_lora: rank {accelerator.process_index} of {accelerator.num_processes} on {accelerator.device}, "
        f"{plan.micro} samples of each task per micro-batch, {workers} loader workers, steps {start_step}-{end_step} "
        f"of {plan.steps}", file=sys.stderr, flush=True,
    )  # fmt: skip
    text_config = clip.config.text_config
    loader = DataLoader(
        MicroBatches(data, plan, accelerator.process_index, start_step, end_step, processor,
                     int(text_config.max_position_embeddings), config.iqa_prompt),
        batch_size=None, num_workers=workers,
        pin_memory=accelerator.device.type == "cuda",
        generator=torch.Generator(),  # its seed draw must not consume the global RNG that dropout (resumed) uses
    )  # fmt: skip
    step_samples = config.batch_size * len(data)
    bar = tqdm(total=end_step, initial=start_step, unit="step", desc="clip_lora", disable=not main, dynamic_ncols=True)
    sums = {t: torch.zeros((), device=accelerator.device) for t in data}
    logged, started, step = 0, time.perf_counter(), start_step
    model.train()
    for batch in loader:
        batch = send_to_device(batch, accelerator.device, non_blocking=True)
        for task, inputs in batch.items():
            with accelerator.accumulate(model):
                loss = model(task, **inputs)
                # backward divides by the accumulation count (micro-batches x tasks); Eq. 2 sums the tasks
                accelerator.backward(loss * len(batch))
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            sums[task] += loss.detach() / config.gradient_accumulation_steps
        if not accelerator.sync_gradients:
            continue
        step += 1
        logged += 1
        rate = step_samples * (step - start_step) / (time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix({"samples/s": f"{rate:.1f}"}, refresh=False)
        if step % config.log_every == 0 or step == end_step:
            means = {t: accelerator.reduce(s, reduction="mean").item() / logged for t, s in sums.items()}
            accelerator.log({**{f"loss/{t}": v for t, v in means.items()}, "lr": scheduler.get_last_lr()[0],
                             "samples_per_s": rate}, step=step)  # fmt: skip
            bar.set_postfix({"samples/s": f"{rate:.1f}", "loss": f"{sum(means.values()):.4f}"})
            sums, logged = {t: torch.zeros_like(s) for t, s in sums.items()}, 0
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < end_step:
            _save_checkpoint(accelerator, out, step, config.keep_checkpoints)
        if config.validate_every and (step % config.validate_every == 0 or step == end_step):
            _validate(accelerator, model, config, step)
    bar.close()
    if not checkpoints(out) or checkpoints(out)[-1][0] != end_step:
        _save_checkpoint(accelerator, out, end_step, config.keep_checkpoints)
    if main:
        _write_result(accelerator.unwrap_model(model).clip, processor, config, run, out, end_step, plan,
                      accelerator.num_processes)  # fmt: skip
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return out


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    final = out / CHECKPOINTS / _STEP_DIR.format(step)
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()  # every rank has written its RNG state
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for _, old in checkpoints(out)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def save_adapter(clip, folder: Path) -> None:
    """The vision tower's peft adapter (peft naming ``base_model.model.encoder...``), without peft's model card."""
    clip.vision_model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)


def _validate(accelerator, model, config: TrainConfig, step: int) -> None:
    import tempfile

    from .validation import validate

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with tempfile.TemporaryDirectory(dir=config.output_dir, prefix=".validation-") as tmp, torch.random.fork_rng():
            save_adapter(accelerator.unwrap_model(model).clip, Path(tmp))
            scores = validate(config, Path(tmp), accelerator.device)
        accelerator.log({f"val/{name}": acc for name, acc in scores.items()}, step=step)
        tqdm.write(f"clip_lora step {step} validation: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    accelerator.wait_for_everyone()
    model.train()


def _write_result(clip, processor, config: TrainConfig, run: dict, out: Path, steps: int, plan, world_size: int) -> None:
    for name in (TRAINER_METADATA, *reversed(ADAPTER_FILES)):  # weights first: the folder stops loading at once
        (out / name).unlink(missing_ok=True)
    staging = out / ".adapter.partial"
    shutil.rmtree(staging, ignore_errors=True)
    save_adapter(clip, staging)
    metadata = {
        "format": "unisim-clip-lora",
        "base_model": config.base_model,
        "training_sets": run["training_sets"],
        "settings": run["settings"],
        "steps": steps,
        "steps_per_epoch": plan.steps,
        "complete": steps == plan.steps,
        "samples_per_task_seen": steps * config.batch_size,
        "world_size": world_size,
        "versions": _versions(),
        "evaluate": f"lmms-eval --model unisim_clip --model_args hf_model={config.base_model},lora={out} --tasks unisim_core",
    }
    (out / TRAINER_METADATA).write_text(json.dumps(metadata, indent=1, sort_keys=True))
    for name in ADAPTER_FILES:
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
    if config.merge:
        merged = out / "merged"
        shutil.rmtree(merged, ignore_errors=True)
        clip.vision_model = clip.vision_model.merge_and_unload()  # the run is over: merged in place
        clip.save_pretrained(str(merged))
        processor.save_pretrained(str(merged))
    tqdm.write(f"clip_lora: {steps} steps done; adapter in {out}")
