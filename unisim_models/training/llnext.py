"""Fine-tuning LLaVA-NeXT into UniSim-LL-N (paper Sec. 3.3, App. B.2) on LLaVA conversation data, with
HF transformers' ``Trainer`` and DeepSpeed: ``deepspeed train/llnext.py --deepspeed
train/configs/zero3.json --model_name_or_path BASE --data_path DATA.json --image_folder DIR
--output_dir OUT``. ``llnext_data`` holds the data side (records, encoding, labels, batches).

The defaults are the paper's: the whole model trained, lr 1e-5 with the vision tower at 2e-6
(``--mm_vision_tower_lr``, a parameter group of its own), no weight decay, warm-up over 3% of the
steps, cosine decay, one epoch. bf16 (where the GPU has it) and gradient checkpointing are on with
CUDA, off without.

Bases: the llava-hf ``LlavaForConditionalGeneration`` (LLaVA-Interleave, e.g.
``llava-hf/llava-interleave-qwen-0.5b-hf``) and ``LlavaOnevisionForConditionalGeneration`` folders.

Output: ``OUT`` is an HF model folder (weights, processor, the in-order chat template) that
``lmms-eval --model llava_hf --model_args pretrained=OUT`` evaluates; ``OUT/checkpoint-N`` are the
``--save_steps`` checkpoints, and ``--resume`` continues from the last one.

Without CUDA (the CPU test runs): the processes are CPU processes (``use_cpu``, else accelerate
would take each rank for a run of its own), and DeepSpeed's shared-memory collective op, which it
would compile first, is left out (gloo does the collectives).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoProcessor, HfArgumentParser, Trainer
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_utils import get_last_checkpoint

from unisim_models.chat_template import use_in_order_template
from unisim_models.distributed import process_mismatch

from .config import TrainingError
from .llnext_data import ConversationCollator, ConversationEncoder, build_dataset
from .trainer import default_workers

logger = logging.getLogger(__name__)

MODEL_CLASSES = ("LlavaForConditionalGeneration", "LlavaOnevisionForConditionalGeneration")
VISION_TOWER = "vision_tower"  # the module name of the vision encoder in both classes


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "base model: an llava-hf LLaVA-Interleave or LLaVA-OneVision folder or hub id"}
    )


@dataclass
class DataArguments:
    data_path: str = field(metadata={"help": "JSON list of LLaVA conversation records (see llnext_data)"})
    image_folder: str = field(default="", metadata={"help": "the folder the records' image paths are relative to"})
    skip_missing_images: bool = field(
        default=False, metadata={"help": "leave out samples with a missing or unreadable image (else: stop)"}
    )


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """HF's training arguments with the paper's defaults and the trainer's own settings."""

    learning_rate: float = field(default=1e-5, metadata={"help": "learning rate of everything but the vision tower"})
    mm_vision_tower_lr: float = field(default=2e-6, metadata={"help": "learning rate of the vision tower"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay (not of biases and norms)"})
    warmup_steps: float = field(default=0.03, metadata={"help": "warm-up steps, or a ratio of all steps if < 1"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule after warm-up"})
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs over the data"})
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision (default: where CUDA has it)", "nargs": "?", "const": True}
    )
    activation_checkpointing: bool | None = field(
        default=None, metadata={"help": "gradient checkpointing (default: where CUDA is)", "nargs": "?", "const": True}
    )
    model_max_length: int = field(
        default=32768, metadata={"help": "samples longer than this many tokens (images included) are left out"}
    )
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output_dir"})
    logging_steps: float = field(default=10, metadata={"help": "log every this many steps"})
    save_total_limit: int | None = field(default=1, metadata={"help": "checkpoints kept in --output_dir"})
    dataloader_num_workers: int | None = field(
        default=None, metadata={"help": "image-loading workers per process (default: its share of the cores - 1, <= 8)"}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep every input the collator makes"})

    def __post_init__(self):
        if self.output_dir is None:
            raise TrainingError("--output_dir is required")
        cuda = torch.cuda.is_available()
        if self.bf16 is None:
            self.bf16 = cuda and torch.cuda.is_bf16_supported()
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = cuda
        if self.dataloader_num_workers is None:
            self.dataloader_num_workers = default_workers()
        if not cuda:
            self.use_cpu = True
            if self.deepspeed:
                _leave_out_shm_comm_op()
        super().__post_init__()
        two_lrs = self.mm_vision_tower_lr != self.learning_rate
        if self.deepspeed and two_lrs and "optimizer" in self.hf_deepspeed_config.config:
            raise TrainingError(
                f"the DeepSpeed config {self.deepspeed} has an \"optimizer\" block: DeepSpeed would then build "
                "the optimizer over one flat parameter list and --mm_vision_tower_lr would be lost; remove "
                "the block (the trainer then hands DeepSpeed its AdamW with both groups)"
            )
        if self.deepspeed and self.use_cpu and self.world_size > 1:
            # accelerate set up the CPU processes (gloo) without DeepSpeed's communication layer, which
            # ZeRO-3's partitioned loading (zero.Init, in from_pretrained) counts the ranks with
            import deepspeed

            deepspeed.init_distributed(dist_backend="gloo")


def _leave_out_shm_comm_op() -> None:
    """DeepSpeed's CPU collectives op is JIT-compiled (minutes) on first use; marked incompatible, it is
    skipped and torch.distributed (gloo) does the collectives."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def base_model_class(name_or_path: str):
    """The transformers class of the base (one of ``MODEL_CLASSES``), from its config alone."""
    config = AutoConfig.from_pretrained(name_or_path)
    architectures = getattr(config, "architectures", None) or []
    known = [a for a in architectures if a in MODEL_CLASSES]
    if not known:
        raise TrainingError(
            f"{name_or_path}: model class {', '.join(architectures) or '?'} (model_type {config.model_type}) is "
            f"not one this trainer fine-tunes: {', '.join(MODEL_CLASSES)}"
        )
    return getattr(transformers, known[0])


def load_model(model_class, name_or_path: str):
    """The base model in float32 (the mixed-precision settings cast it)."""
    model = model_class.from_pretrained(name_or_path, dtype=torch.float32)
    if is_deepspeed_zero3_enabled():
        # A partitioned (ZeRO-3) load records more weight renamings than a plain one (the legacy ones
        # too); save_pretrained would revert them all and name the weights unlike the base checkpoint
        # (language_model.model.model.*), which transformers 4.x cannot load. Without the record it
        # reverts the class's own mapping, as after a plain load.
        model._weight_conversions = None
    return model


def is_vision_tower(name: str) -> bool:
    return VISION_TOWER in name.split(".")


def param_groups(model, args: TrainingArguments, decay_names) -> list[dict]:
    """Trainable parameters in groups: the language model and projector at ``learning_rate`` first, then
    the vision tower at ``mm_vision_tower_lr``; each split into decayed and not decayed (biases, norms)."""
    decay_names = set(decay_names)
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((is_vision_tower(name), name in decay_names), []).append(param)
    return [
        {
            "params": params,
            "lr": args.mm_vision_tower_lr if vision else args.learning_rate,
            "weight_decay": args.weight_decay if decay else 0.0,
        }
        for (vision, decay), params in sorted(groups.items())
    ]


class LLNextTrainer(Trainer):
    """``Trainer`` with the vision tower at its own learning rate (parameter groups of its own); each log
    of the learning rate also gives the vision tower's, ``learning_rate_vision_tower``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._optimizer_report = _OptimizerReport(self.args.mm_vision_tower_lr)
        self.add_callback(self._optimizer_report)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            groups = param_groups(model, self.args, self.get_decay_parameter_names(model))
            optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(groups, **kwargs)
            names = {id(p): n for n, p in model.named_parameters()}
            for i, group in enumerate(groups):
                vision = sum(is_vision_tower(names[id(p)]) for p in group["params"])
                logger.info(
                    "parameter group %d: lr %g, weight decay %g, %d tensors (%d of the vision tower), %d values",
                    i, group["lr"], group["weight_decay"], len(group["params"]), vision,
                    sum(getattr(p, "ds_numel", p.numel()) for p in group["params"]),
                )  # fmt: skip
        return self.optimizer

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "learning_rate" in logs and self._optimizer_report.vision_lr is not None:
            logs["learning_rate_vision_tower"] = self._optimizer_report.vision_lr
        super().log(logs, *args, **kwargs)


class _OptimizerReport(transformers.TrainerCallback):
    """Logs the parameter groups of the optimizer the training steps run (DeepSpeed's, under DeepSpeed)
    once it exists, and reads the vision tower's learning rate off it after each step, before the
    schedule moves it (when the Trainer reads the main one)."""

    def __init__(self, base_vision_lr: float):
        self.base_vision_lr = base_vision_lr
        self.vision_lr = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        logger.info(
            "optimizer %s: %d parameter groups, lr %s",
            type(getattr(optimizer, "optimizer", optimizer)).__name__, len(lrs), ", ".join(f"{lr:g}" for lr in lrs),
        )  # fmt: skip

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        lrs = [g["lr"] for g in optimizer.param_groups if g.get("initial_lr") == self.base_vision_lr]
        self.vision_lr = lrs[0] if lrs else None


def _checkpoint_to_resume(args: TrainingArguments) -> str | None:
    out = Path(args.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if args.resume_from_checkpoint:
        return args.resume_from_checkpoint
    if args.resume:
        if last is None:
            raise TrainingError(f"--resume: --output_dir {out} holds no checkpoint-* folder")
        return last
    if last is not None:
        raise TrainingError(
            f"--output_dir {out} holds checkpoints of an earlier run (last: {Path(last).name}): pass --resume to "
            "continue it, or give another --output_dir"
        )
    return None


def _report_processes(trainer: Trainer) -> None:
    """One line naming every process (gathered from all ranks), and a stop if accelerate's differ from the launch."""
    mismatch = process_mismatch(trainer.accelerator)
    if mismatch:
        raise TrainingError(mismatch)
    state = trainer.accelerator.state
    me = f"rank {state.process_index} on {state.device}"
    ranks = [me]
    if state.num_processes > 1:
        ranks = [None] * state.num_processes
        torch.distributed.all_gather_object(ranks, me)
    logger.info(
        "%d processes (%s, %s): %s",
        state.num_processes, state.distributed_type, state.backend or "no backend", "; ".join(ranks),
    )  # fmt: skip


def train(model_args: ModelArguments, data_args: DataArguments, args: TrainingArguments) -> Path:
    """Fine-tune; return the output folder."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("unisim_models.training").setLevel(logging.INFO if args.should_log else logging.WARNING)
    checkpoint = _checkpoint_to_resume(args)
    model_class = base_model_class(model_args.model_name_or_path)
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path)
    encoder = ConversationEncoder(processor)
    dataset = build_dataset(
        data_args.data_path, data_args.image_folder, encoder, args.model_max_length, data_args.skip_missing_images
    )
    model = load_model(model_class, model_args.model_name_or_path)
    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = LLNextTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=ConversationCollator(pad),
        processing_class=processor,
    )
    _report_processes(trainer)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(args.output_dir)
    trainer.save_state()
    if trainer.is_world_process_zero():
        use_in_order_template(args.output_dir)
        logger.info("model written to %s", args.output_dir)
    return Path(args.output_dir)


def main(argv: list[str] | None = None) -> int:
    # The deepspeed launcher names the local process count LOCAL_SIZE; the core-share rule reads torchrun's name.
    if "LOCAL_SIZE" in os.environ:
        os.environ.setdefault("LOCAL_WORLD_SIZE", os.environ["LOCAL_SIZE"])
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    try:
        train(*parser.parse_args_into_dataclasses(argv))
    except TrainingError as e:
        print(f"llnext: error: {e}", file=sys.stderr)
        return 2
    return 0
