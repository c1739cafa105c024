"""A tiny random LLaVA-NeXT (LLaVA-OneVision, qwen flavour) checkpoint, written offline, that
lmms-eval's ``llava_onevision`` model loads through LLaVA-NeXT's own ``load_pretrained_model``.

The checkpoint is written from transformers' building blocks alone (no LLaVA-NeXT code), in the
layout LLaVA-NeXT reads for a ``llava_qwen`` model:

* ``config.json``: a Qwen2 config with ``model_type: llava_qwen`` plus the ``mm_*`` keys
  (``mm_vision_tower``, ``mm_projector_type: mlp2x_gelu``, ``mm_patch_merge_type: spatial_unpad``,
  ``image_aspect_ratio: anyres_max_9``, ``image_grid_pinpoints``, ...);
* ``model.safetensors``: the Qwen2 weights, ``model.vision_tower.vision_tower.*`` (the SigLIP
  tower without its last layer and head, as LLaVA-NeXT keeps it), ``model.mm_projector.{0,2}.*``
  and ``model.image_newline``;
* the byte-level tokenizer of ``tests/tiny_llava.py`` and a ``generation_config.json`` that stops
  at ``<|im_end|>``.

LLaVA-NeXT picks its SigLIP tower by name: ``mm_vision_tower`` must contain ``"siglip"`` and must
*not* be an existing path (an existing path is loaded as a CLIP tower). So, as real OneVision
checkpoints name ``google/siglip-so400m-patch14-384``, the tiny tower is put into an offline hub
cache folder under a repo id (``SIGLIP_REPO``); point ``HF_HUB_CACHE`` at that folder when loading.
The tower keeps LLaVA-NeXT's fixed geometry (384x384 input, 14x14 patches: 729 tokens an image,
which its tower asserts) with a tiny width.

The checkpoint folder's name must contain ``"qwen"`` (or pass ``model_name=`` in ``--model_args``):
``load_pretrained_model`` picks the model class from that name.

Inputs reaching the model can be traced from a CLI subprocess: run it with
``trace_env(trace_file, hook_dir)``; each ``LlavaQwenForCausalLM.generate`` call then appends one
JSON line (see ``install_trace_hook``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.tiny_llava import SPECIAL_TOKENS, _steer, _tokenizer, text_config_for

# A hub repo id, not a path: "siglip" in it selects LLaVA-NeXT's SigLIP tower.
SIGLIP_REPO = "tiny-random/siglip-so400m-patch14-384"
SIGLIP_IMAGE_SIZE, SIGLIP_PATCH_SIZE = 384, 14  # fixed by LLaVA-NeXT's SigLIP tower and processor
TOKENS_PER_IMAGE = (SIGLIP_IMAGE_SIZE // SIGLIP_PATCH_SIZE) ** 2  # 729
IMAGE_TOKEN_INDEX = -200  # LLaVA-NeXT's placeholder id for one <image> in input_ids
_CACHE_COMMIT = "0" * 40  # the snapshot's name in the offline cache


def _siglip_config(hidden_size: int):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,  # LLaVA-NeXT drops the last layer: one stays
        num_attention_heads=2,
        image_size=SIGLIP_IMAGE_SIZE,
        patch_size=SIGLIP_PATCH_SIZE,
    )


def make_tiny_siglip_in_hub_cache(hub_cache: Path, *, repo_id: str = SIGLIP_REPO, seed: int = 0,
                                  hidden_size: int = 16) -> dict:  # fmt: skip
    """Write a tiny random ``SiglipVisionModel`` as the snapshot of ``repo_id`` in the hub cache
    folder ``hub_cache`` (the layout ``HF_HUB_CACHE`` points at); return its state dict."""
    import torch
    from transformers import SiglipVisionModel

    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / _CACHE_COMMIT
    torch.manual_seed(seed)
    model = SiglipVisionModel(_siglip_config(hidden_size)).eval()
    model.save_pretrained(snapshot, safe_serialization=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(_CACHE_COMMIT)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_tiny_llava_next_qwen(
    path: Path,
    hub_cache: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    vision_hidden_size: int = 16,
    image_aspect_ratio: str = "anyres_max_9",
    image_grid_pinpoints: list[list[int]] | None = None,
    reply: str | None = "A",
) -> Path:
    """Write a tiny LLaVA-NeXT qwen checkpoint into ``path`` and its SigLIP tower into the hub cache
    folder ``hub_cache``; return ``path`` (whose name should contain ``"qwen"``).

    ``reply``: greedy decoding after a prompt ending in ``"\\n"`` emits ``reply`` then
    ``<|im_end|>`` (as in ``tests/tiny_llava.py``); the steering only holds if the weights written
    here are the ones loaded, so a wrong key layout shows as unparsed answers.
    ``image_grid_pinpoints`` defaults to 384 and 768 sides: no image costs more than four crops.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    s = SIGLIP_IMAGE_SIZE
    pinpoints = image_grid_pinpoints or [[s, s], [s, 2 * s], [2 * s, s], [2 * s, 2 * s]]

    vision = make_tiny_siglip_in_hub_cache(hub_cache, seed=seed + 1, hidden_size=vision_hidden_size)
    last = _siglip_config(vision_hidden_size).num_hidden_layers - 1
    dropped = (f"vision_model.encoder.layers.{last}.", "vision_model.head.")

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config = text_config_for(tokenizer, ids, hidden_size, max_position_embeddings=8192)
    torch.manual_seed(seed)
    lm = Qwen2ForCausalLM(text_config).eval()
    if reply is not None:
        _steer(lm, tokenizer, reply)

    state = {k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()}
    for k, v in vision.items():
        if not k.startswith(dropped) and not k.endswith("position_ids"):
            state["model.vision_tower.vision_tower." + k] = v.contiguous()
    gen = torch.Generator().manual_seed(seed + 2)
    for i, (n_in, n_out) in ((0, (vision_hidden_size, hidden_size)), (2, (hidden_size, hidden_size))):
        state[f"model.mm_projector.{i}.weight"] = torch.randn(n_out, n_in, generator=gen) / n_in**0.5
        state[f"model.mm_projector.{i}.bias"] = torch.zeros(n_out)
    state["model.image_newline"] = torch.randn(hidden_size, generator=gen) / hidden_size**0.5
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})

    config = text_config.to_dict()
    config.update(
        model_type="llava_qwen",
        architectures=["LlavaQwenForCausalLM"],
        torch_dtype="float16",
        use_cache=True,
        mm_vision_tower=SIGLIP_REPO,
        mm_hidden_size=vision_hidden_size,
        mm_projector_type="mlp2x_gelu",
        mm_vision_select_layer=-1,
        mm_vision_select_feature="patch",
        mm_patch_merge_type="spatial_unpad",
        mm_newline_position="grid",
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,  # else the builder adds a token and resizes the embeddings
        use_mm_proj=True,
        image_aspect_ratio=image_aspect_ratio,
        image_grid_pinpoints=pinpoints,
        tokenizer_padding_side="right",
    )
    (path / "config.json").write_text(json.dumps(config, indent=2))
    GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# Tracing what reaches the model, from a subprocess.

TRACE_ENV = "TINY_LLAVA_NEXT_TRACE"


def install_trace_hook(trace_file: str | os.PathLike) -> None:
    """Make every ``LlavaQwenForCausalLM.generate`` call append one JSON line to ``trace_file``.

    A line holds ``input_ids`` (the one prompt, ``IMAGE_TOKEN_INDEX`` where each ``<image>`` was),
    ``num_images`` and ``image_shapes`` (what ``images`` carried), ``image_sizes``, and, from the
    splice LLaVA-NeXT's ``prepare_inputs_labels_for_multimodal`` makes: ``embeds_len`` (the
    sequence the language model got), ``text_in_place`` (every text piece's embedding rows sit
    exactly where the pieces before it and an equal share of image rows per placeholder put them)
    and ``image_tokens`` (rows per placeholder). For a batch of equally shaped images (the
    multi-image path), ``images_in_place`` says whether the rows at placeholder ``i`` equal the
    encoded image ``i``; ``None`` where not checkable.
    """
    import torch
    from llava.model.language_model.llava_qwen import LlavaQwenForCausalLM as cls

    if getattr(cls.generate, "_tiny_llava_next_traced", False):
        return
    trace_file = os.fspath(trace_file)
    original_generate, original_prepare = cls.generate, cls.prepare_inputs_labels_for_multimodal
    current: list[dict] = []

    def prepare(self, input_ids, position_ids, attention_mask, past_key_values, labels, images, *args, **kwargs):
        out = original_prepare(self, input_ids, position_ids, attention_mask, past_key_values, labels, images,
                               *args, **kwargs)  # fmt: skip
        embeds = out[4]
        if not current or embeds is None or input_ids.shape[0] != 1:
            return out
        ids = input_ids[0].tolist()
        cuts = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_INDEX]
        chunks, start = [], 0
        for c in [*cuts, len(ids)]:
            chunks.append(ids[start:c])
            start = c + 1
        n_text = sum(len(c) for c in chunks)
        n_img = len(cuts)
        rows = embeds.shape[1] - n_text
        per_image = rows // n_img if n_img and rows % n_img == 0 else None
        record = current[-1]
        record.update(embeds_len=int(embeds.shape[1]), image_tokens=[per_image] * n_img if per_image else None)
        ok, images_ok, pos = per_image is not None, None, 0
        table = self.get_model().embed_tokens
        feats = None
        if ok and torch.is_tensor(images) and images.ndim == 4 and images.shape[0] == n_img:
            feats = self.encode_images(images)
            images_ok = feats.shape[1] == per_image
        with torch.no_grad():
            for k, chunk in enumerate(chunks):
                if not ok:
                    break
                if chunk:
                    want = table(torch.tensor(chunk, device=embeds.device))
                    ok = torch.equal(embeds[0, pos : pos + len(chunk)], want.to(embeds.dtype))
                    pos += len(chunk)
                if k < n_img:
                    if images_ok:
                        images_ok = torch.equal(embeds[0, pos : pos + per_image], feats[k].to(embeds.dtype))
                    pos += per_image
        record.update(text_in_place=bool(ok), images_in_place=images_ok)
        return out

    def generate(self, inputs=None, images=None, image_sizes=None, modalities=["image"], **kwargs):  # noqa: B006
        record = {
            "input_ids": inputs[0].tolist() if inputs is not None else None,
            "batch": int(inputs.shape[0]) if inputs is not None else 0,
            "num_images": 0 if images is None else len(images),
            "image_shapes": None if images is None else [list(x.shape) for x in images],
            "image_sizes": None if image_sizes is None else [list(s) for s in image_sizes],
            "modalities": list(modalities) if modalities is not None else None,
        }
        current.append(record)
        try:
            return original_generate(self, inputs, images=images, image_sizes=image_sizes, modalities=modalities,
                                     **kwargs)  # fmt: skip
        finally:
            current.pop()
            with open(trace_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    generate._tiny_llava_next_traced = True
    cls.generate = generate
    cls.prepare_inputs_labels_for_multimodal = prepare


_SITECUSTOMIZE = """\
# Written by tests/tiny_llava_next.py: installs its trace hook when {env} is set.
import os as _os
if _os.environ.get({env!r}):
    import importlib.util as _ilu, sys as _sys
    _sys.path.insert(0, {root!r})
    _spec = _ilu.spec_from_file_location("_tiny_llava_next_trace", {module!r})
    _mod = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _sys.path.remove({root!r})
    _mod.install_trace_hook(_os.environ[{env!r}])
"""


def trace_env(trace_file: Path, hook_dir: Path, base: dict | None = None) -> dict:
    """An environment for a subprocess (the ``lmms-eval`` CLI) that traces what the LLaVA-NeXT qwen
    model receives: writes ``hook_dir/sitecustomize.py``, puts ``hook_dir`` first on
    ``PYTHONPATH``, sets ``TINY_LLAVA_NEXT_TRACE`` and the offline switches."""
    hook_dir = Path(hook_dir)
    hook_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve()
    (hook_dir / "sitecustomize.py").write_text(
        _SITECUSTOMIZE.format(env=TRACE_ENV, module=str(here), root=str(here.parent.parent))
    )
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook_dir), env.get("PYTHONPATH", "")) if p)
    env[TRACE_ENV] = str(trace_file)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    return env


def read_trace(trace_file: Path) -> list[dict]:
    """The records ``install_trace_hook`` wrote, one per ``generate`` call (empty if none)."""
    trace_file = Path(trace_file)
    if not trace_file.exists():
        return []
    return [json.loads(line) for line in trace_file.read_text(encoding="utf-8").splitlines() if line]


if __name__ == "__main__":  # python -m tests.tiny_llava_next OUT_DIR HUB_CACHE
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-llava-next-qwen")
    print(make_tiny_llava_next_qwen(out, Path(sys.argv[2] if len(sys.argv) > 2 else out.parent / "hub")))
