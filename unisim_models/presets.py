"""Named encoders: the paper's general-purpose CLIP-family models and the UniSim checkpoints.

A preset says what ``load_encoder`` needs (``encoder_args``). The UniSim presets are LoRA on an HF
``CLIPModel``; the authors released their checkpoints on Google Drive, which nothing here can
download, so such a preset takes a local file: ``lora=PATH``, or the file saved as
``$UNISIM_CHECKPOINTS/<name>.pt`` (default ``~/.cache/unisim_bench/checkpoints``), and says where
to get it when neither is there.

``resolve`` also takes what the project's trainer writes: a ``train/clip_lora.py`` output folder
(its ``unisim_training.json`` names the base model; the adapter is the folder itself), or its
``merged/`` HF model folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

TRAINER_METADATA = "unisim_training.json"  # written by unisim_models.training.trainer


class PresetError(ValueError):
    """An unknown preset, or a UniSim preset whose checkpoint is not on this machine."""


@dataclass(frozen=True)
class Preset:
    name: str
    paper_name: str  # the row of the paper's tables (Tables 6 and 8)
    hf_model: str  # hub id of the encoder, or of the LoRA's base model
    lora_url: str | None = None  # where the UniSim LoRA checkpoint is published
    quality_mode: str = "clip-iqa"  # the IQA / PAA mode a metric uses by default

    @property
    def needs_checkpoint(self) -> bool:
        return self.lora_url is not None

    def default_checkpoint(self) -> Path:
        return checkpoint_dir() / f"{self.name}.pt"


_UNISIM_DRIVE = "https://drive.google.com/file/d/{}/view"
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("clip_vit_b_32", "CLIP ViT-B/32", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
        Preset("clip_vit_l_14", "CLIP ViT-L/14", "openai/clip-vit-large-patch14"),
        Preset("clip_vit_l_14_336", "CLIP ViT-L/14 (336 px)", "openai/clip-vit-large-patch14-336"),
        Preset("clip_vit_h_14", "CLIP ViT-H/14", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
        Preset("siglip_so400m", "SigLIP SoViT/14", "google/siglip-so400m-patch14-384"),
        # the UniSim models were trained with the naive prompt, so it is their default quality mode
        Preset("unisim_vit_b_32", "UniSim ViT-B/32", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
               _UNISIM_DRIVE.format("1z8fQ3KSrih-diYqm9O_NazotlFTo8fN3"), "naive"),
        Preset("unisim_vit_l_14", "UniSim ViT-L/14", "openai/clip-vit-large-patch14-336",
               _UNISIM_DRIVE.format("1exLFqZvantuiu4yx2FtdGb8OcolvFg_f"), "naive"),
    )
}  # fmt: skip


def checkpoint_dir() -> Path:
    return Path(os.environ.get("UNISIM_CHECKPOINTS", "~/.cache/unisim_bench/checkpoints")).expanduser()


def list_presets() -> list[Preset]:
    return list(PRESETS.values())


@dataclass(frozen=True)
class Resolved:
    """What a name or path stands for: ``encoder_args`` for ``load_encoder``, or an HF LLaVA folder."""

    name: str
    encoder_args: dict | None = None
    lmm_folder: Path | None = None
    quality_mode: str = "clip-iqa"


def is_preset(name: str | None) -> bool:
    return name in PRESETS


def resolve(name_or_path: str | os.PathLike, lora: str | os.PathLike | None = None) -> Resolved:
    """A preset name, a trainer output folder, an HF CLIP / SigLIP model folder or an HF LLaVA folder."""
    name = str(name_or_path)
    if name in PRESETS:
        return _preset(PRESETS[name], lora)
    path = Path(name).expanduser()
    if not path.exists():
        raise PresetError(f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor an existing folder")
    if (path / TRAINER_METADATA).is_file():
        if lora is not None:
            raise PresetError(f"{path} is a trainer output folder: it is the LoRA adapter already, leave lora= out")
        base = json.loads((path / TRAINER_METADATA).read_text())["base_model"]
        return Resolved(str(path), {"hf_model": base, "lora": str(path)}, quality_mode="naive")
    model_type = _model_type(path)
    if model_type in ("llava", "llava_onevision"):
        if lora is not None:
            raise PresetError("lora= applies to CLIP encoders, not to an LLaVA model")
        return Resolved(str(path), lmm_folder=path)
    args = {"hf_model": str(path)}
    if lora is not None:
        args["lora"] = str(lora)
    return Resolved(str(path), args)


def _preset(preset: Preset, lora) -> Resolved:
    args = {"hf_model": preset.hf_model}
    if preset.needs_checkpoint:
        args["lora"] = str(_checkpoint(preset, lora))
    elif lora is not None:
        args["lora"] = str(lora)
    return Resolved(preset.name, args, quality_mode=preset.quality_mode)


def _checkpoint(preset: Preset, lora) -> Path:
    if lora is not None:
        path = Path(lora).expanduser()
        if not path.exists():
            raise PresetError(f"{preset.name}: LoRA checkpoint {path} not found")
        return path
    path = preset.default_checkpoint()
    if not path.exists():
        raise PresetError(
            f"{preset.name} needs the released UniSim LoRA checkpoint, which cannot be downloaded "
            f"automatically. Download it from {preset.lora_url} and pass lora=/path/to/file, or save it as "
            f"{path} (the folder is $UNISIM_CHECKPOINTS, default ~/.cache/unisim_bench/checkpoints)"
        )
    return path


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None
