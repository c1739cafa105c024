"""CLIP-family encoder backends: open_clip models and HuggingFace ``CLIPModel`` / ``SiglipModel``.

``load_encoder`` returns an ``Encoder`` whose ``encode_images`` / ``encode_texts`` give
L2-normalised float32 embeddings on the CPU, computed with the backbone's own preprocessing and
tokenizer, without gradients, in eval mode:

- open_clip: ``load_encoder(model="ViT-B-32", pretrained="laion2b_s34b_b79k")`` (a pretrained tag,
  from the hub cache or downloaded) or ``pretrained="/path/to/weights.pt|.bin|.safetensors"``;
  ``model_config="path/to/<name>.json"`` registers a custom architecture with
  ``open_clip.add_model_config`` first (its name is the file's stem; ``model`` may be left out).
  ``model="hf-hub:org/repo"`` / ``"local-dir:/folder"`` are passed to open_clip as they are.
- HuggingFace: ``load_encoder(hf_model="openai/clip-vit-large-patch14-336")`` (a hub id or a local
  folder) for ``clip`` and ``siglip`` model types. Images go through the processor's PIL backend
  (the preprocessing these checkpoints were released and evaluated with; transformers 5 otherwise
  defaults to a torchvision backend whose resizing differs slightly). CLIP texts are padded to the
  longest (the pooled token is the first end-of-text, so padding cannot change it) and truncated
  to the model's context; SigLIP texts are padded to ``max_length``, as SigLIP requires.
- ``lora=path``: a UniSim LoRA checkpoint on an HF ``CLIPModel`` (see ``unisim_models.lora``),
  loaded strictly and merged into the vision tower.

Images go through two halves, both used by ``encode_images``: ``pixel_transform`` (picklable, no
model: a list of RGB PIL images to the pixel batch, what a DataLoader worker runs) and
``encode_pixels`` (the forward on such a batch).

Offline (``HF_HUB_OFFLINE=1``), weights that are not in the cache raise ``WeightsNotFoundError``
at once, saying what to download and where to put it; no network is tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip
_OPEN_CLIP_PRECISION = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")
HF_MODEL_TYPES = ("clip", "siglip")


class WeightsNotFoundError(RuntimeError):
    """Pretrained weights are neither local nor in the cache, and cannot (or may not) be downloaded."""


# -- helpers ------------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return str(value).strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """Offline mode, from the environment now or as huggingface_hub read it at import."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):  # pragma: no cover
        return False


def hf_cache_dir() -> str:
    """The hub cache in use, read from the environment now (HF_HUB_CACHE, then HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _cached_file(repo_id: str, filename: str, cache_dir: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return found if isinstance(found, str) else None


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value or "\\" in value or value.startswith(("~", "."))
        or value.lower().endswith(_CHECKPOINT_SUFFIXES) or os.sep in value
    )  # fmt: skip


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in _OPEN_CLIP_PRECISION:
            raise ValueError(f"dtype {dtype} is not supported; use float32, float16 or bfloat16")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of: float32, float16, bfloat16")
    return DTYPES[key]


def _rgb(images) -> list:
    from PIL import Image

    if isinstance(images, Image.Image):
        raise TypeError("encode_images takes a list of PIL images, not a single image")
    out = []
    for image in images:
        if not isinstance(image, Image.Image):
            raise TypeError(f"encode_images takes PIL images, got {type(image).__name__}")
        out.append(image if image.mode == "RGB" else image.convert("RGB"))
    return out


def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a list of strings, not a single string")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"encode_texts takes strings, got {type(text).__name__}")
    return texts


def _features(output) -> torch.Tensor:
    """get_image_features / get_text_features give a tensor (transformers 4) or an output whose
    pooler_output is the projected embedding (transformers 5)."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None and isinstance(output, (tuple, list)):
        pooled = output[1] if len(output) > 1 else output[0]
    if pooled is None:
        raise TypeError(f"unexpected feature output {type(output).__name__}")
    return pooled


# -- base ---------------------------------------------------------------------------------------
def _open_clip_pixels(preprocess, images: list) -> torch.Tensor:
    return torch.stack([preprocess(image) for image in images])


def _hf_pixels(image_processor, images: list) -> torch.Tensor:
    return image_processor(images=images, return_tensors="pt")["pixel_values"]


class Encoder:
    """A frozen two-tower encoder. Subclasses set the model and ``pixel_transform`` (list of RGB PIL
    images -> float pixel batch on the CPU) and implement ``_forward_pixels`` and ``_forward_texts``."""

    name: str = ""
    pixel_transform: Callable[[list], torch.Tensor]
    logit_scale: float = 100.0
    embed_dim: int | None = None

    def __init__(self, name: str, device="cpu", dtype="float32") -> None:
        self.name = name
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        self.image_forwards = 0
        self.text_forwards = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device}, dtype={self.dtype})"

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self.embed_dim or 0, dtype=torch.float32)

    @staticmethod
    def _finish(features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.detach().to(device="cpu", dtype=torch.float32), dim=-1)

    def encode_images(self, images) -> torch.Tensor:
        """[n, d] float32 CPU embeddings, L2-normalised, of a list of PIL images."""
        images = _rgb(images)
        if not images:
            return self._empty()
        return self.encode_pixels(self.pixel_transform(images))

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[n, d] float32 CPU embeddings, L2-normalised, of a pixel batch from ``pixel_transform``."""
        with torch.no_grad():
            features = self._forward_pixels(pixels.to(self.device, self.dtype))
        self.image_forwards += len(pixels)
        return self._finish(features)

    def encode_texts(self, texts) -> torch.Tensor:
        """[n, d] float32 CPU embeddings, L2-normalised, of a list of strings."""
        texts = _texts(texts)
        if not texts:
            return self._empty()
        with torch.no_grad():
            features = self._forward_texts(texts)
        self.text_forwards += len(texts)
        return self._finish(features)

    def _forward_pixels(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _logit_scale(model) -> float:
        scale = getattr(model, "logit_scale", None)
        if not isinstance(scale, torch.Tensor):
            return 100.0
        return float(scale.detach().float().exp().reshape(-1)[0])


# -- open_clip ----------------------------------------------------------------------------------
def _register_open_clip_config(model: str | None, model_config) -> str:
    import json

    path = Path(model_config).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"open_clip model_config not found: {path}")
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"model_config {path} is not valid JSON: {e}") from e
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise ValueError(f"model_config {path} is not an open_clip model config: it lacks {', '.join(missing)}")
    if model is not None and model != path.stem:
        raise ValueError(
            f"model_config {path} registers the architecture {path.stem!r} (open_clip names a config by its "
            f"file's stem), but model={model!r}; pass model={path.stem!r} or leave model out"
        )
    import open_clip

    open_clip.add_model_config(path)
    return path.stem


class OpenClipEncoder(Encoder):
    def __init__(self, model: str, pretrained: str | None = None, device="cpu", dtype="float32") -> None:
        import open_clip

        schema = next((s for s in ("hf-hub:", "local-dir:") if model.startswith(s)), None)
        arch = model if schema else model.replace("/", "-")
        name = f"open_clip:{arch}" + (f"/{pretrained}" if pretrained and not schema else "")
        super().__init__(name, device, dtype)
        cache_dir = None
        if schema == "local-dir:":
            folder = Path(model[len(schema) :]).expanduser()
            if not folder.is_dir():
                raise FileNotFoundError(f"open_clip local-dir folder not found: {folder}")
            model = f"{schema}{folder}"
            pretrained = None
        elif schema == "hf-hub:":
            repo = model[len(schema) :]
            cache_dir = hf_cache_dir()
            if hub_offline() and not _cached_file(repo, "open_clip_config.json", cache_dir):
                raise WeightsNotFoundError(_open_clip_hub_message(repo, cache_dir, f"model={model}"))
            pretrained = None
        else:
            if open_clip.get_model_config(arch) is None:
                raise ValueError(
                    f"unknown open_clip model {model!r}. See the available names with "
                    '`python -c "import open_clip; print(open_clip.list_models())"`, or register your own '
                    "architecture with model_config=path/to/<name>.json"
                )
            model = arch
            if not pretrained:
                tags = open_clip.list_pretrained_tags_by_model(arch)
                raise ValueError(
                    f"open_clip model {model!r} needs pretrained=<tag> or pretrained=/path/to/checkpoint "
                    f"(.pt/.bin/.safetensors); tags for it: {', '.join(tags) or 'none (pass a checkpoint path)'}"
                )
            tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
            if tag_cfg:
                cache_dir = self._check_tag(arch, pretrained, tag_cfg)
            elif os.path.isfile(os.path.expanduser(pretrained)):
                pretrained = os.path.expanduser(pretrained)
            elif _looks_like_path(pretrained):
                raise FileNotFoundError(f"open_clip checkpoint (pretrained=) not found: {pretrained}")
            else:
                tags = open_clip.list_pretrained_tags_by_model(arch)
                raise ValueError(
                    f"unknown pretrained tag {pretrained!r} for open_clip model {model!r}; known tags: "
                    f"{', '.join(tags) or 'none'} (see open_clip.list_pretrained(); or pass a checkpoint path)"
                )
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                model, pretrained=pretrained, precision=_OPEN_CLIP_PRECISION[self.dtype], device=self.device,
                cache_dir=cache_dir,
            )  # fmt: skip
            self.tokenizer = open_clip.get_tokenizer(model, cache_dir=cache_dir)
        except RuntimeError as e:
            text = str(e)
            if text.startswith(("Failed to download weights", "Failed initial config/weights load from HF Hub")):
                where = model[len("hf-hub:") :] if schema == "hf-hub:" else f"model={model},pretrained={pretrained}"
                raise WeightsNotFoundError(
                    f"could not get the open_clip weights for {where}: {text}\n"
                    f"Download them (online) into the hub cache {hf_cache_dir()}, or pass a local checkpoint "
                    "as pretrained=/path/to/checkpoint.pt|.bin|.safetensors"
                ) from e
            if "Error(s) in loading state_dict" in text:
                raise ValueError(
                    f"checkpoint {pretrained} does not fit open_clip model {model!r} "
                    f"(is it the right architecture / model_config?): {text[:2000]}"
                ) from e
            raise
        except OSError as e:  # a tokenizer from the hub, offline
            raise WeightsNotFoundError(
                f"could not load the tokenizer of open_clip model {model}: {e}\n"
                f"Download it (online) into the hub cache {hf_cache_dir()} and retry"
            ) from e
        self.model.eval().requires_grad_(False)
        self.pixel_transform = partial(_open_clip_pixels, self.preprocess)
        self.logit_scale = self._logit_scale(self.model)
        self.embed_dim = getattr(getattr(self.model, "visual", None), "output_dim", None)

    @staticmethod
    def _check_tag(arch: str, tag: str, cfg: dict) -> str | None:
        """Offline: fail fast, with instructions, unless the tag's weights are already cached."""
        if not hub_offline() or cfg.get("file"):
            return hf_cache_dir() if cfg.get("hf_hub") else None
        cache_dir = hf_cache_dir()
        hub = cfg.get("hf_hub", "")
        if hub:
            repo, filename = os.path.split(hub)
            names = [filename] if filename else []
            if not filename or filename == "open_clip_pytorch_model.bin":
                names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            elif filename.endswith((".bin", ".pth")):
                names = [filename[:-4] + ".safetensors", filename]
            if any(_cached_file(repo, n, cache_dir) for n in names):
                return cache_dir
            raise WeightsNotFoundError(
                _open_clip_hub_message(repo, cache_dir, f"model={arch},pretrained={tag}", files=names)
            )
        url = cfg.get("url", "")
        target = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if url and not os.path.isfile(target):
            raise WeightsNotFoundError(
                f"open_clip weights for model={arch},pretrained={tag} are not cached and HF_HUB_OFFLINE=1 forbids "
                f"downloading them. Download {url} to {target} (or unset HF_HUB_OFFLINE to let open_clip fetch "
                f"it), or pass a local checkpoint as pretrained=/path/to/checkpoint.pt"
            )
        return None

    def _forward_pixels(self, pixels):
        return self.model.encode_image(pixels)

    def _forward_texts(self, texts):
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


def _open_clip_hub_message(repo: str, cache_dir: str, what: str, files=None) -> str:
    names = f" ({' or '.join(files)})" if files else ""
    return (
        f"open_clip weights for {what} are not in the hub cache {cache_dir} and HF_HUB_OFFLINE=1 forbids "
        f"downloading them. Download the hub repo {repo}{names} into that cache, e.g. "
        f"`hf download {repo}` (older huggingface_hub: `huggingface-cli download {repo}`) with the same "
        "HF_HOME / HF_HUB_CACHE, or unset HF_HUB_OFFLINE to let open_clip fetch it; or pass a local "
        "checkpoint file as pretrained=/path/to/checkpoint.pt|.bin|.safetensors"
    )


# -- HuggingFace --------------------------------------------------------------------------------
class HFEncoder(Encoder):
    IMAGE_BACKEND = "pil"

    def __init__(self, hf_model: str, lora: str | None = None, device="cpu", dtype="float32") -> None:
        name = f"hf:{hf_model}" + (f"+lora:{lora}" if lora else "")
        super().__init__(name, device, dtype)
        if lora is not None and not Path(lora).expanduser().exists():
            raise FileNotFoundError(f"LoRA checkpoint not found: {lora}")
        source, load_kwargs = self._resolve(hf_model)
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(source, **load_kwargs)
        except OSError as e:
            raise _hf_load_error(hf_model, load_kwargs, e) from e
        self.model_type = config.model_type
        if self.model_type not in HF_MODEL_TYPES:
            raise ValueError(
                f"hf_model {hf_model!r} is a {self.model_type!r} model; the HF backend supports "
                f"{', '.join(HF_MODEL_TYPES)} (CLIPModel, SiglipModel)"
            )
        if lora and self.model_type != "clip":
            raise ValueError(
                f"lora= applies to an HF CLIPModel (UniSim checkpoints); {hf_model!r} is {self.model_type!r}"
            )
        from transformers import CLIPModel, SiglipModel

        model_class = CLIPModel if self.model_type == "clip" else SiglipModel
        try:
            model = model_class.from_pretrained(source, dtype=torch.float32, **load_kwargs)
        except OSError as e:
            raise _hf_load_error(hf_model, load_kwargs, e) from e
        if lora:
            from unisim_models.lora import apply_unisim_lora

            model = apply_unisim_lora(model, Path(lora).expanduser(), merge=True)
        self.model = model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.processor = self._processor(source, load_kwargs, hf_model)
        self.tokenizer = self.processor.tokenizer
        self.image_processor = self.processor.image_processor
        self.pixel_transform = partial(_hf_pixels, self.image_processor)
        text_config = self.model.config.text_config
        self.max_length = int(getattr(text_config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)
        self.logit_scale = self._logit_scale(self.model)
        if self.model_type == "clip":
            self.embed_dim = int(self.model.config.projection_dim)
        else:
            self.embed_dim = int(self.model.config.vision_config.hidden_size)

    @staticmethod
    def _resolve(hf_model: str) -> tuple[str, dict]:
        path = Path(hf_model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"hf_model folder {path} has no config.json (not a saved HF model)")
            return str(path), {}
        if path.exists():
            raise FileNotFoundError(f"hf_model must be a hub id or a model folder; {path} is a file")
        parts = hf_model.split("/")
        is_hub_id = len(parts) <= 2 and all(parts) and "\\" not in hf_model and not hf_model.startswith(("~", ".", "/"))
        if not is_hub_id:
            raise FileNotFoundError(f"hf_model folder not found: {path} (and it is not a hub id 'org/name')")
        cache_dir = hf_cache_dir()
        offline = hub_offline()
        if offline and not _cached_file(hf_model, "config.json", cache_dir):
            raise WeightsNotFoundError(_hf_message(hf_model, cache_dir, None))
        return hf_model, {"cache_dir": cache_dir, "local_files_only": offline}

    def _processor(self, source: str, load_kwargs: dict, hf_model: str):
        from transformers import AutoProcessor

        try:
            try:
                return AutoProcessor.from_pretrained(source, backend=self.IMAGE_BACKEND, **load_kwargs)
            except TypeError:  # transformers without image-processor backends
                return AutoProcessor.from_pretrained(source, use_fast=False, **load_kwargs)
        except OSError as e:
            raise _hf_load_error(hf_model, load_kwargs, e) from e
        except (ImportError, ValueError, AttributeError) as e:
            if self.model_type == "siglip":
                try:
                    import sentencepiece  # noqa: F401
                except ImportError:
                    raise ImportError(
                        f"the SigLIP tokenizer of {hf_model} needs sentencepiece: pip install sentencepiece"
                    ) from e
            raise

    def _forward_pixels(self, pixels):
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _forward_texts(self, texts):
        if self.model_type == "siglip":
            # SigLIP was trained on texts padded to max_length, pooled at the last position, no mask
            enc = self.tokenizer(
                texts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            inputs = {"input_ids": enc["input_ids"]}
        else:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            inputs = {k: enc[k] for k in ("input_ids", "attention_mask") if k in enc}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return _features(self.model.get_text_features(**inputs))


def _hf_load_error(hf_model: str, load_kwargs: dict, error: OSError) -> Exception:
    if not load_kwargs:  # a local folder
        return FileNotFoundError(f"hf_model folder {hf_model}: {str(error).strip().splitlines()[0]}")
    return WeightsNotFoundError(_hf_message(hf_model, load_kwargs.get("cache_dir"), str(error)))


def _hf_message(hf_model: str, cache_dir: str | None, detail: str | None) -> str:
    cache_dir = cache_dir or hf_cache_dir()
    reason = (
        f"is not in the hub cache {cache_dir} and HF_HUB_OFFLINE=1 forbids downloading it"
        if detail is None
        else f"could not be loaded ({detail.strip().splitlines()[0] if detail.strip() else 'unknown error'})"
    )
    return (
        f"HF model {hf_model!r} {reason}. Download it into that cache with `hf download {hf_model}` "
        f"(older huggingface_hub: `huggingface-cli download {hf_model}`) using the same HF_HOME / HF_HUB_CACHE, "
        f"or save it to a folder (`hf download {hf_model} --local-dir /path/to/folder`) and pass "
        "hf_model=/path/to/folder"
    )


# -- entry point --------------------------------------------------------------------------------
def load_encoder(
    *, model=None, pretrained=None, model_config=None, hf_model=None, lora=None, device="cpu", dtype="float32"
) -> Encoder:
    """Load a CLIP-family encoder.

    open_clip: ``model`` (+ ``pretrained`` tag or checkpoint path, optional ``model_config`` JSON).
    HuggingFace: ``hf_model`` (hub id or folder), optional ``lora`` (UniSim checkpoint).
    """
    use_open_clip = model is not None or model_config is not None
    if use_open_clip == (hf_model is not None):
        if use_open_clip:
            raise ValueError(
                "pass either the open_clip args (model=..., pretrained=..., optional model_config=...) or "
                "hf_model=..., not both"
            )
        raise ValueError(
            "no encoder given: pass model=<open_clip name> with pretrained=<tag or checkpoint path> "
            "(optionally model_config=<config.json>), or hf_model=<hub id or folder> (optionally lora=<UniSim checkpoint>)"
        )
    resolve_dtype(dtype)
    if use_open_clip:
        if lora is not None:
            raise ValueError(
                "lora= applies to the HF backend only: the UniSim checkpoints are LoRA on an HF CLIPModel. "
                "Use hf_model=laion/CLIP-ViT-B-32-laion2B-s34B-b79K (UniSim ViT-B/32) or "
                "hf_model=openai/clip-vit-large-patch14-336 (UniSim ViT-L/14) with lora=<checkpoint>"
            )
        if model_config is not None:
            model = _register_open_clip_config(model, model_config)
        return OpenClipEncoder(model, pretrained=pretrained, device=device, dtype=dtype)
    if pretrained is not None or model_config is not None:
        raise ValueError("pretrained= and model_config= are open_clip args; with hf_model= leave them out")
    return HFEncoder(hf_model, lora=lora, device=device, dtype=dtype)
