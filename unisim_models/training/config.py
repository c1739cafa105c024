"""The trainer's settings: the paper's defaults (App. B.2), a YAML / JSON config file over them, and
command-line flags over both.

``--batch-size`` is the global batch of each task per optimisation step (the paper's 32): whatever
the number of processes and the gradient accumulation, one step sees ``batch_size`` samples of
every task, so a run on 8 GPUs follows the same trajectory as one on a single GPU.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from unisim_models.lora import UNISIM_LORA_CONFIG, UNISIM_LORA_TARGET_MODULES
from unisim_models.scoring import NAIVE_PROMPTS

# The core 2AFC tasks and the training sets of each (Table 5); the eval set of a (task, dataset)
# pair is "<task>_<dataset>", its training split "<data dir>/<task>_<dataset>/train/".
CORE_TASKS = ("img2afc", "it2afc", "text2afc", "iqa")
PAPER_DATASETS = {
    "img2afc": ["nights", "pieapp"],
    "it2afc": ["hpdv2", "magicbrush", "hqedit"],
    "text2afc": ["polaris", "hqedit"],
    "iqa": ["kadid10k", "pieapp", "pipal"],
}
REPORT_TO = ("tensorboard", "wandb")
MIXED_PRECISION = ("no", "fp16", "bf16")


class TrainingError(ValueError):
    """A bad setting or input, said in one line (the command prints it and exits with status 2)."""


@dataclass
class TrainConfig:
    base_model: str | None = None
    output_dir: str | None = None
    data_dir: str | None = None
    seed: int = 0
    datasets: dict[str, list[str]] = field(default_factory=lambda: {t: list(d) for t, d in PAPER_DATASETS.items()})
    drop_tasks: list[str] = field(default_factory=list)
    batch_size: int = 32
    samples_per_task: int = 400_000
    max_steps: int | None = None
    lr: float = 5e-6
    weight_decay: float = 0.35
    warmup_steps: int = 500
    margin: float = 0.05
    iqa_prompt: str = NAIVE_PROMPTS["quality"]
    lora_r: int = UNISIM_LORA_CONFIG["r"]
    lora_alpha: int = UNISIM_LORA_CONFIG["lora_alpha"]
    lora_dropout: float = UNISIM_LORA_CONFIG["lora_dropout"]
    lora_targets: list[str] = field(default_factory=lambda: list(UNISIM_LORA_TARGET_MODULES))
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    gradient_checkpointing: bool = False
    num_workers: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    report_to: list[str] | None = None
    validate_every: int = 0
    validation_sets: list[str] = field(default_factory=list)
    validation_mini: bool = False
    validation_samples: int = 200
    merge: bool = False
    resume: bool = False
    overwrite: bool = False

    @property
    def tasks(self) -> list[str]:
        return [t for t in CORE_TASKS if t in self.datasets and t not in self.drop_tasks]

    def eval_sets(self, task: str) -> list[str]:
        return [f"{task}_{d}" for d in self.datasets[task]]

    # settings that decide the trajectory: a resumed run must keep them (everything else may change)
    TRAJECTORY = (
        "base_model", "seed", "datasets", "drop_tasks", "batch_size", "samples_per_task", "lr", "weight_decay",
        "warmup_steps", "margin", "iqa_prompt", "lora_r", "lora_alpha", "lora_dropout", "lora_targets",
        "gradient_accumulation_steps", "mixed_precision", "gradient_checkpointing",
    )  # fmt: skip

    def trajectory(self) -> dict:
        return {k: getattr(self, k) for k in self.TRAJECTORY}


_FIELDS = {f.name for f in fields(TrainConfig)}


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    paper = "; ".join(f"{t}={','.join(ds)}" for t, ds in PAPER_DATASETS.items())
    p = argparse.ArgumentParser(
        prog="train/clip_lora.py",
        description=(
            "Train a UniSim CLIP model (paper Sec. 3.3, App. B.2): LoRA on the vision tower of an HF CLIPModel, "
            "hinge loss (Eq. 1) summed over the core tasks (Eq. 2), one batch of every task per step. Run it as "
            "`accelerate launch train/clip_lora.py ...` (any number of GPUs or nodes, accelerate's own config), "
            "`torchrun --nproc_per_node N train/clip_lora.py ...`, or `python train/clip_lora.py ...` for one "
            "process. Settings: the paper's defaults, then --config FILE, then the flags given. The output folder "
            "is a peft adapter plus unisim_training.json: "
            "`lmms-eval --model unisim_clip --model_args hf_model=BASE,lora=OUTPUT_DIR --tasks unisim_core`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    g = p.add_argument_group("run")
    g.add_argument("--config", help="YAML or JSON file of settings (keys: these flags' names, - or _); flags override it")
    g.add_argument("--base-model", help="HF CLIPModel: hub id (e.g. laion/CLIP-ViT-B-32-laion2B-s34B-b79K, "
                   "openai/clip-vit-large-patch14-336) or a local folder; required, here or in --config")  # fmt: skip
    g.add_argument("--output-dir", help="where the adapter, its metadata, checkpoints and logs go; required")
    g.add_argument("--data-dir", help="prepared data root (default: $UNISIM_DATA_DIR, else ~/.cache/unisim_bench)")
    g.add_argument("--seed", type=int, help=f"seed of the sample order, LoRA init and dropout (default {d.seed})")
    g.add_argument("--max-steps", type=int, help="stop after this many optimisation steps: the run is the first "
                   "MAX_STEPS steps of the full one (same schedule); --resume may extend it (default: one epoch)")  # fmt: skip
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    g.add_argument("--overwrite", action="store_true", help="replace the run already in --output-dir")
    g.add_argument("--merge", action="store_true", help="also save the merged full model to OUTPUT_DIR/merged "
                   "(an HF CLIPModel folder with its processor: hf_model=OUTPUT_DIR/merged)")  # fmt: skip
    g = p.add_argument_group("data")
    g.add_argument("--datasets", action="append", metavar="TASK=D1,D2", help="the training sets of a task, "
                   f"replacing its default; repeat per task. Default (Table 5): {paper}. Table 4's ablation: "
                   "--datasets it2afc=hqedit, then --datasets it2afc=hqedit,hpdv2")  # fmt: skip
    g.add_argument("--drop-task", action="append", dest="drop_tasks", metavar="TASK",
                   help=f"leave a task out of training (repeatable); tasks: {', '.join(CORE_TASKS)}")  # fmt: skip
    g.add_argument("--batch-size", type=int, help=f"samples of EACH task per optimisation step, over all processes "
                   f"and accumulation steps together (default {d.batch_size})")  # fmt: skip
    g.add_argument("--samples-per-task", type=int, help=f"samples of each task one epoch sees (default "
                   f"{d.samples_per_task}); a task with fewer is repeated, pass by pass, in a new seeded order")  # fmt: skip
    g.add_argument("--num-workers", type=int, help="DataLoader workers per process decoding and preprocessing images "
                   "(default: the process's share of the cores minus one, at most 8)")  # fmt: skip
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, help=f"peak learning rate of AdamW (default {d.lr})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {d.weight_decay})")
    g.add_argument("--warmup-steps", type=int, help=f"linear warm-up steps before the cosine decay (default {d.warmup_steps})")
    g.add_argument("--margin", type=float, help=f"hinge margin mu of Eq. 1 on cosine similarities (default {d.margin})")
    g.add_argument("--iqa-prompt", help=f"the IQA reference text (default {d.iqa_prompt!r}, paper footnote 1)")
    g.add_argument("--gradient-accumulation-steps", type=int, help="micro-batches per step (default 1); the batch of "
                   "each task per process and micro-batch is BATCH_SIZE / (processes x this), each task's micro-batch "
                   "a forward and backward of its own")  # fmt: skip
    g.add_argument("--mixed-precision", choices=MIXED_PRECISION, help="autocast through accelerate (default: accelerate's "
                   "config / launch flag, else no)")  # fmt: skip
    g.add_argument("--gradient-checkpointing", action="store_true", help="recompute the vision tower's activations in "
                   "the backward pass (less memory, more compute)")  # fmt: skip
    g = p.add_argument_group("LoRA (on the vision tower only; the text tower is frozen)")
    g.add_argument("--lora-r", type=int, help=f"rank (default {d.lora_r})")
    g.add_argument("--lora-alpha", type=int, help=f"alpha (default {d.lora_alpha})")
    g.add_argument("--lora-dropout", type=float, help=f"dropout (default {d.lora_dropout})")
    g.add_argument("--lora-targets", help=f"comma-separated module names in the vision tower (default "
                   f"{','.join(d.lora_targets)})")  # fmt: skip
    g = p.add_argument_group("checkpoints, logging, validation")
    g.add_argument("--checkpoint-every", type=int, help=f"save the training state every N steps (default "
                   f"{d.checkpoint_every}; 0: only at the end)")  # fmt: skip
    g.add_argument("--keep-checkpoints", type=int, help=f"how many of the latest checkpoints to keep (default {d.keep_checkpoints})")
    g.add_argument("--log-every", type=int, help=f"log the per-task losses and the lr every N steps (default {d.log_every})")
    g.add_argument("--report-to", help=f"comma-separated accelerate trackers: {', '.join(REPORT_TO)}, or none "
                   "(default: tensorboard when installed); logs under OUTPUT_DIR/logs")  # fmt: skip
    g.add_argument("--validate-every", type=int, help="score held-out sets every N steps and at the end (default 0: never)")
    g.add_argument("--validation-sets", help="comma-separated prepared test sets to validate on (e.g. "
                   "img2afc_bapps,it2afc_imagereward); scored by unisim_clip's code and lmms-eval's metric")  # fmt: skip
    g.add_argument("--validation-mini", action="store_true", help="validate on the bundled mini benchmark's core sets")
    g.add_argument("--validation-samples", type=int, help=f"at most this many samples per validation set (default "
                   f"{d.validation_samples})")  # fmt: skip
    return p


def _read_file(path: str) -> dict:
    file = Path(path).expanduser()
    if not file.is_file():
        raise TrainingError(f"config file not found: {file}")
    text = file.read_text()
    try:
        if file.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError or json.JSONDecodeError, both with the position
        raise TrainingError(f"config file {file} does not parse: {' '.join(str(e).split())}") from None
    if not isinstance(values, dict):
        raise TrainingError(f"config file {file} must hold a mapping of settings, not {type(values).__name__}")
    out = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in _FIELDS or name in ("resume", "overwrite"):
            raise TrainingError(f"config file {file}: unknown setting {key!r}")
        out[name] = value
    return out


def _datasets_flag(values: list[str]) -> dict[str, list[str]]:
    out = {}
    for value in values:
        task, sep, names = value.partition("=")
        if not sep:
            raise TrainingError(f"--datasets takes TASK=D1,D2 (e.g. it2afc=hqedit,hpdv2), got {value!r}")
        out[task.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return out


def _split(value) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def resolve_config(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < config file < flags, checked (one ``TrainingError`` per problem)."""
    flags = vars(build_parser().parse_args(argv))
    values = _read_file(flags.pop("config")) if "config" in flags else {}
    if "datasets" in flags:
        chosen = dict(values.get("datasets") or PAPER_DATASETS)
        chosen.update(_datasets_flag(flags.pop("datasets")))
        flags["datasets"] = chosen
    values.update(flags)
    for key in ("lora_targets", "report_to", "validation_sets", "drop_tasks"):
        if values.get(key) is not None:
            values[key] = _split(values[key])
    if "datasets" in values:
        values["datasets"] = {str(t): _split(ds or []) for t, ds in values["datasets"].items()}
    config = TrainConfig(**values)
    check(config)
    return config


def train_eval_sets() -> dict[str, list[str]]:
    """task -> the datasets with a training split of it, from the builders."""
    from unisim_tasks.data.builder import all_builders

    out: dict[str, list[str]] = {t: [] for t in CORE_TASKS}
    for builder in all_builders().values():
        for eval_set in builder.outputs.get("train", {}):
            task, dataset = eval_set.split("_", 1)
            if task in out:
                out[task].append(dataset)
    return {t: sorted(ds) for t, ds in out.items()}


def check(c: TrainConfig) -> None:
    if not c.base_model:
        raise TrainingError("--base-model is required (an HF CLIPModel hub id or folder), on the command line or in --config")
    if not c.output_dir:
        raise TrainingError("--output-dir is required")
    if c.resume and c.overwrite:
        raise TrainingError("--resume continues the run in --output-dir and --overwrite replaces it: pass one of them")
    known = train_eval_sets()
    for task in [*c.datasets, *c.drop_tasks]:
        if task not in CORE_TASKS:
            raise TrainingError(f"unknown task {task!r}; the trained tasks are {', '.join(CORE_TASKS)}")
    for task in CORE_TASKS:
        if task in c.drop_tasks:
            continue
        chosen = c.datasets.get(task, [])
        if not chosen:
            raise TrainingError(
                f"no training dataset chosen for task {task}; choose some (--datasets {task}=D1,D2; it has "
                f"{', '.join(known[task])}) or leave the task out with --drop-task {task}"
            )
        unknown = [d for d in chosen if d not in known[task]]
        if unknown:
            raise TrainingError(
                f"unknown {task} training dataset {unknown[0]!r}; {task} can train on {', '.join(known[task])}"
            )
        if len(set(chosen)) != len(chosen):
            raise TrainingError(f"--datasets {task} names a dataset twice: {','.join(chosen)}")
    if not c.tasks:
        raise TrainingError("every task is dropped: nothing to train on")
    positive = ("batch_size", "samples_per_task", "gradient_accumulation_steps", "lora_r", "log_every",
                "validation_samples", "keep_checkpoints")  # fmt: skip
    for key in positive:
        if getattr(c, key) < 1:
            raise TrainingError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(c, key)}")
    for key in ("warmup_steps", "checkpoint_every", "validate_every"):
        if getattr(c, key) < 0:
            raise TrainingError(f"--{key.replace('_', '-')} must be >= 0, got {getattr(c, key)}")
    if c.max_steps is not None and c.max_steps < 1:
        raise TrainingError(f"--max-steps must be >= 1, got {c.max_steps}")
    if c.num_workers is not None and c.num_workers < 0:
        raise TrainingError(f"--num-workers must be >= 0, got {c.num_workers}")
    if c.samples_per_task < c.batch_size:
        raise TrainingError(f"--samples-per-task ({c.samples_per_task}) is less than one batch (--batch-size {c.batch_size})")
    if not 0 <= c.lora_dropout < 1:
        raise TrainingError(f"--lora-dropout must be in [0, 1), got {c.lora_dropout}")
    if c.mixed_precision is not None and c.mixed_precision not in MIXED_PRECISION:
        raise TrainingError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {c.mixed_precision!r}")
    if not c.lora_targets:
        raise TrainingError("--lora-targets is empty")
    for tracker in c.report_to or []:
        if tracker not in (*REPORT_TO, "none"):
            raise TrainingError(f"unknown --report-to {tracker!r}; choose from {', '.join(REPORT_TO)}, none")
    if c.validate_every and not (c.validation_sets or c.validation_mini):
        raise TrainingError("--validate-every needs --validation-sets or --validation-mini")
    from unisim_tasks.data import EVAL_SETS

    for eval_set in c.validation_sets:
        if eval_set not in EVAL_SETS or eval_set.startswith("ir_"):
            raise TrainingError(
                f"unknown validation set {eval_set!r}; choose UniSim-Bench test sets other than IR, e.g. img2afc_nights"
            )
