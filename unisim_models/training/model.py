"""The model being trained: an HF ``CLIPModel`` whose vision tower is wrapped by peft LoRA (the
layout ``unisim_models.lora`` loads and the UniSim authors train), and the module the prepared
(DDP-wrapped) model runs: both towers' forwards and the hinge loss of Eq. 1 for every task.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig, TrainingError
from .data import TASK_KINDS


def hinge_loss(sims: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 1, averaged over the batch: ``max(0, (2y - 1) * (sim0 - sim1) + mu)`` for sims ``[b, 2]``."""
    sign = 2 * labels.to(sims.dtype) - 1
    return torch.clamp(sign * (sims[:, 0] - sims[:, 1]) + margin, min=0).mean()


def load_processor(source: str, load_kwargs: dict):
    """The processor as ``unisim_clip`` loads it (PIL image backend), so training sees the pixels evaluation sees."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source, backend="pil", **load_kwargs)
    except TypeError:  # transformers without image-processor backends
        return AutoProcessor.from_pretrained(source, use_fast=False, **load_kwargs)


def load_base(base_model: str):
    """(CLIPModel in float32, its processor); a model that is missing, not offline, or not a CLIPModel
    is a ``TrainingError``."""
    from transformers import AutoConfig, CLIPModel

    from unisim_models.encoders import HFEncoder, WeightsNotFoundError

    try:
        source, load_kwargs = HFEncoder._resolve(base_model)
        model_type = AutoConfig.from_pretrained(source, **load_kwargs).model_type
        if model_type != "clip":
            raise TrainingError(f"--base-model {base_model} is a {model_type!r} model, not a CLIPModel (model_type 'clip')")
        model = CLIPModel.from_pretrained(source, dtype=torch.float32, **load_kwargs)
        processor = load_processor(source, load_kwargs)
    except (OSError, WeightsNotFoundError, ValueError) as e:
        if isinstance(e, TrainingError):
            raise
        raise TrainingError(f"--base-model {base_model}: {' '.join(str(e).split())}") from None
    return model, processor


def add_lora(clip, config: TrainConfig):
    """Freeze ``clip`` and wrap its vision tower with LoRA on ``config.lora_targets``; returns the peft model."""
    from peft import LoraConfig, get_peft_model

    linear = {name.rsplit(".", 1)[-1] for name, m in clip.vision_model.named_modules() if isinstance(m, nn.Linear)}
    for target in config.lora_targets:
        if target not in linear:
            raise TrainingError(
                f"LoRA target {target!r} matches no linear layer of the vision tower (its layers: {', '.join(sorted(linear))})"
            )
    clip.requires_grad_(False)
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, bias="none",
        target_modules=list(config.lora_targets),
    )  # fmt: skip
    if config.gradient_checkpointing:
        clip.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 method deprecated for v6
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        clip.vision_model = get_peft_model(clip.vision_model, lora)
    return clip.vision_model


class UniSimLoss(nn.Module):
    """``forward(task, **inputs)`` -> the task's mean hinge loss on one of its micro-batches
    (``data.MicroBatches``); the trainable weights are the vision tower's LoRA."""

    def __init__(self, clip, margin: float) -> None:
        super().__init__()
        self.clip, self.margin = clip, margin

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output
        return F.normalize(self.clip.visual_projection(pooled), dim=-1)

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the text tower is frozen
            pooled = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return F.normalize(self.clip.text_projection(pooled), dim=-1)

    def forward(self, task, pixel_values, ref, alt, label, input_ids=None, attention_mask=None) -> torch.Tensor:
        embeddings = {"image": self.image_embeddings(pixel_values)}
        if input_ids is not None:
            embeddings["text"] = self.text_embeddings(input_ids, attention_mask).to(embeddings["image"].dtype)
        ref_kind, alt_kind = TASK_KINDS[task]
        refs, alts = embeddings[ref_kind][ref], embeddings[alt_kind][alt]  # [b, d], [b, 2, d]
        return hinge_loss((alts * refs[:, None]).sum(-1).float(), label, self.margin)
