"""Loading UniSim LoRA checkpoints into a HuggingFace ``CLIPModel``.

The UniSim CLIP models are an HF ``CLIPModel`` whose vision tower (``CLIPModel.vision_model``) is
wrapped by peft ``get_peft_model`` with LoRA r=16, alpha=32, dropout=0.2, bias="none" on the
``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``, ``fc1`` and ``fc2`` modules; the text tower is
frozen. The authors (``SaraGhazanfari/UniSim``, ``train/open_clip_train/main.py``) save
``{"epoch", "name", "state_dict", "optimizer"[, "scaler"]}`` where ``state_dict`` is the
``state_dict()`` of their ``UniSim`` module, taken from the DistributedDataParallel wrapper, so
every key starts with ``module.``::

    module.vision_model.base_model.model.embeddings.patch_embedding.weight
    module.vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.base_layer.weight
    module.vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.default.weight
    module.vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_B.default.weight
    ...
    module.text_model.encoder.layers.0.self_attn.q_proj.weight
    module.visual_projection.weight
    module.text_projection.weight

(no ``logit_scale``: their module keeps ``logit_scale = 1`` as a plain attribute). Their loader
(``models/__init__.py`` ``resolve_ckpt`` / ``load_unisim_models``) takes ``ckpt["state_dict"]``
when present, drops ``module.`` and loads the result with ``strict=True`` into a fresh ``UniSim``
built on the base model. This module does the same, strictly, and accepts:

- that full layout, as a training checkpoint or a bare state dict, torch (``.pt``/``.bin``/...)
  or safetensors, with or without the ``module.`` prefix;
- a LoRA-only state dict (every key a ``lora_`` weight) in the same naming, or in peft's saved
  naming (``base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.weight``);
- a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``/``.bin``) made on
  the vision tower (keys ``base_model.model.encoder...``) or on the whole CLIPModel with LoRA in
  the vision tower only (keys ``base_model.model.vision_model.encoder...``);
- peft < 0.7 naming, where a wrapped layer's own weight is ``q_proj.weight`` rather than
  ``q_proj.base_layer.weight``.

After loading, the adapter is merged into the weights (``merge_and_unload``), so inference costs
the same as the base model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

UNISIM_LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
UNISIM_LORA_CONFIG = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.2, "bias": "none"}
UNISIM_BASES = {
    "UniSim ViT-B/32": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
    "UniSim ViT-L/14": "openai/clip-vit-large-patch14-336",
}

_WRAPPER_KEYS = ("state_dict", "model", "module")
_PREFIXES = ("module.", "_orig_mod.")
_SAFETENSORS_SUFFIXES = (".safetensors",)
_ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_SHOW = 5  # how many offending keys an error lists


_EXPECTED = (
    "Expected a UniSim checkpoint: the authors' training checkpoint {'state_dict': {name: tensor, ...}, ...}, "
    "a plain state dict {name: tensor, ...} (torch .pt/.bin or .safetensors), or a peft adapter folder "
    "(adapter_config.json + adapter_model.safetensors or .bin)."
)


class LoraCheckpointError(ValueError):
    """The checkpoint is unreadable, is not a state dict, or does not fit the base model (missing,
    unexpected or mis-shaped keys)."""


def unisim_lora_config(**overrides):
    from peft import LoraConfig

    kwargs = dict(UNISIM_LORA_CONFIG, target_modules=list(UNISIM_LORA_TARGET_MODULES))
    kwargs.update(overrides)
    return LoraConfig(**kwargs)


# -- reading ------------------------------------------------------------------------------------
def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from a training dict, ``module.`` prefixes dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA checkpoint not found: {path}")
    kind = "safetensors file" if path.suffix in _SAFETENSORS_SUFFIXES else "torch checkpoint"
    try:
        if path.suffix in _SAFETENSORS_SUFFIXES:
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not such a file at all, or a pickle of objects weights_only refuses
        raise LoraCheckpointError(
            f"LoRA checkpoint {path} is not a {kind} (unreadable: {_gist(e)}). {_EXPECTED}"
        ) from e
    content, holder = obj, ""
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and obj[key]:
            content, holder = obj[key], f"a dict whose {key!r} is "
            break
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise LoraCheckpointError(
            f"LoRA checkpoint {path} is a {kind} holding {holder}{_describe(content)}, not a state dict. {_EXPECTED}"
        )
    state = {}
    for key, value in content.items():
        state.setdefault(_strip_prefixes(key), value)
    return state


def _gist(error: Exception) -> str:
    """A load error in one line: torch's weights_only message is a page, its cause follows "WeightsUnpickler error:"."""
    cause = str(error).split("WeightsUnpickler error:")[-1].strip().split("\n")[0].split(". Please use")[0]
    return f"{type(error).__name__}: {cause}" if cause else type(error).__name__


def _describe(obj) -> str:
    """What a loaded object that should map names to tensors is: "a list", "a dict whose 'epoch' is an int"."""

    def a(value) -> str:
        name = type(value).__name__
        return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"

    if not isinstance(obj, dict):
        return a(obj)
    if not obj:
        return "an empty dict"
    key = next(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    return f"a dict whose {key!r} is {a(obj[key])}"


# -- the authors' module layout -----------------------------------------------------------------
class _UniSimLayout(torch.nn.Module):
    """Same attribute names as the authors' ``UniSim`` module, sharing the CLIPModel's submodules."""

    def __init__(self, clip_model, peft_vision):
        super().__init__()
        self.vision_model = peft_vision
        self.text_model = clip_model.text_model
        self.visual_projection = clip_model.visual_projection
        self.text_projection = clip_model.text_projection


def _ignorable(key: str) -> bool:
    # transformers < 4.31 saved the position_ids buffers; they are fixed aranges, not weights.
    return key.endswith("embeddings.position_ids")


def _few(keys) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _mismatch_error(path, missing, unexpected, shapes, hint: str = "") -> LoraCheckpointError:
    parts = [f"LoRA checkpoint {path} does not fit the base model:"]
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_few(unexpected)}")
    if shapes:
        shown = sorted(shapes)[:_SHOW]
        parts.append(
            f"{len(shapes)} shape mismatch(es): "
            + ", ".join(f"{k} {tuple(shapes[k][0])} in checkpoint vs {tuple(shapes[k][1])} in model" for k in shown)
        )
    bases = "; ".join(f"{name}: hf_model={base}" for name, base in UNISIM_BASES.items())
    parts.append(
        hint
        or "Expected the UniSim layout (the state_dict of the authors' UniSim module, vision tower wrapped "
        "by peft: 'vision_model.base_model.model.encoder.layers.N.self_attn.q_proj.lora_A.default.weight', "
        "'text_model.*', 'visual_projection.weight', 'text_projection.weight'; optional 'module.' prefix)."
    )
    if shapes:
        parts.append(f"Is hf_model the checkpoint's base model? ({bases})")
    return LoraCheckpointError("\n  ".join(parts))


def _check_and_load(module: torch.nn.Module, state: dict, path, lora_only: bool, extra: dict | None = None) -> None:
    """Strictly load ``state`` into ``module`` (only the LoRA weights when ``lora_only``)."""
    expected = module.state_dict()
    wanted = {k for k in expected if (".lora_" in k) or not lora_only}
    state = {k: v for k, v in state.items() if not (_ignorable(k) and k not in expected)}
    state = _old_peft_names(state, expected)
    extra = extra or {}
    missing = wanted - set(state)
    unexpected = set(state) - set(expected) - set(extra)
    unexpected |= {k for k in state if k in expected and k not in wanted}
    shapes = {
        k: (state[k].shape, expected[k].shape) for k in set(state) & wanted if state[k].shape != expected[k].shape
    }
    shapes.update(
        {k: (state[k].shape, extra[k].shape) for k in set(state) & set(extra) if state[k].shape != extra[k].shape}
    )
    if missing or unexpected or shapes:
        raise _mismatch_error(path, missing, unexpected, shapes)
    module.load_state_dict({k: state[k] for k in wanted}, strict=not lora_only)
    with torch.no_grad():
        for key, param in extra.items():
            if key in state:
                param.copy_(state[key].to(param.dtype))


def _old_peft_names(state: dict, expected) -> dict:
    """peft < 0.7 kept a wrapped layer's own weights as ``q_proj.weight``; now ``q_proj.base_layer.weight``."""
    out = {}
    for key, value in state.items():
        if key not in expected:
            head, _, leaf = key.rpartition(".")
            renamed = f"{head}.base_layer.{leaf}"
            if head and renamed in expected and renamed not in state:
                key = renamed
        out[key] = value
    return out


_PEFT_SAVED_PREFIX = "base_model.model."


def _to_unisim_names(state: dict, adapter_name: str = "default") -> dict:
    """peft saved naming (``base_model.model.X.lora_A.weight``) -> UniSim naming."""
    out = {}
    for key, value in state.items():
        if key.startswith(_PEFT_SAVED_PREFIX) and not key.startswith("vision_model."):
            inner = key[len(_PEFT_SAVED_PREFIX) :].removeprefix("vision_model.")  # adapter on the whole CLIPModel
            for part in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"):
                inner = inner.replace(f".{part}.weight", f".{part}.{adapter_name}.weight")
            key = "vision_model.base_model.model." + inner
        out[key] = value
    return out


def apply_unisim_lora(clip_model, path: str | os.PathLike, merge: bool = True):
    """Load a UniSim LoRA checkpoint (file or peft adapter folder) into ``clip_model`` in place.

    ``clip_model`` must be an HF ``CLIPModel`` holding the base weights, in float32. Returns it,
    with the adapter merged into ``clip_model.vision_model`` when ``merge``.
    Raises ``FileNotFoundError`` for a missing path and ``LoraCheckpointError`` (a ``ValueError``)
    when the file is unreadable or not a state dict, or its keys or shapes do not fit.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LoRA checkpoint not found: {path}")
    if not hasattr(clip_model, "vision_model") or not hasattr(clip_model, "visual_projection"):
        raise ValueError(f"UniSim LoRA checkpoints apply to an HF CLIPModel, not {type(clip_model).__name__}")
    if path.is_dir():
        return _apply_adapter_folder(clip_model, path, merge)

    state = read_state_dict(path)
    lora_keys = [k for k in state if ".lora_" in k]
    lora_only = bool(lora_keys) and len(lora_keys) == len(state)
    if lora_only:
        state = _to_unisim_names(state)
    elif not lora_keys:
        raise _mismatch_error(
            path, [], [], {},
            hint=f"It holds no LoRA weights (no '.lora_' keys; first keys: {_few(list(state)[:_SHOW])}). "
            "Expected a UniSim checkpoint: the state_dict of the authors' UniSim module "
            "('vision_model.base_model.model...lora_A.default.weight', optional 'module.' prefix).",
        )  # fmt: skip
    peft_vision = _peft_model(clip_model.vision_model, unisim_lora_config())
    layout = _UniSimLayout(clip_model, peft_vision)
    extra = {"logit_scale": clip_model.logit_scale} if "logit_scale" in state else None
    _check_and_load(layout, state, path, lora_only=lora_only, extra=extra)
    _finish(clip_model, peft_vision, merge)
    return clip_model


def _apply_adapter_folder(clip_model, folder: Path, merge: bool):
    """A peft adapter folder whose LoRA weights all sit in the vision tower."""
    from peft import LoraConfig

    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} is a folder without adapter_config.json; pass a UniSim checkpoint file "
            "(.pt/.bin/.safetensors) or a peft adapter folder"
        )
    weights = next((folder / name for name in _ADAPTER_WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"peft adapter folder {folder} has no {' or '.join(_ADAPTER_WEIGHT_FILES)}")
    config = LoraConfig.from_pretrained(str(folder))
    config.inference_mode = True
    saved = read_state_dict(weights)
    outside = [
        k for k in saved if k.startswith(_PEFT_SAVED_PREFIX) and not k.startswith(_PEFT_SAVED_PREFIX + "vision_model.")
    ]
    if any(k.startswith(_PEFT_SAVED_PREFIX + "vision_model.") for k in saved) and outside:
        raise LoraCheckpointError(
            f"peft adapter {folder} adapts modules outside the vision tower ({_few(outside)}); "
            "UniSim adapters are LoRA on the CLIP vision tower only"
        )
    state = _to_unisim_names(saved)  # -> 'vision_model.base_model.model.<...>.lora_A.default.weight'
    peft_vision = _peft_model(clip_model.vision_model, config)
    layout = _UniSimLayout(clip_model, peft_vision)
    _check_and_load(layout, state, weights, lora_only=True)
    _finish(clip_model, peft_vision, merge)
    return clip_model


def _peft_model(module, config):
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 method deprecated for v6
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(module, config)


def _finish(clip_model, peft_vision, merge: bool) -> None:
    peft_vision.eval()
    clip_model.vision_model = peft_vision.merge_and_unload() if merge else peft_vision
