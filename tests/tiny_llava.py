"""A tiny random LLaVA-OneVision checkpoint, written offline, that lmms-eval's ``llava_hf`` loads.

``make_tiny_llava_onevision(path)`` saves a ``LlavaOnevisionForConditionalGeneration`` (1-layer
Qwen2 text model, 1-layer SigLIP vision tower, hidden size 32, 28x28 images in 14x14 patches) and a
matching ``LlavaOnevisionProcessor`` whose tokenizer is a byte-level BPE with no merges (one token
per byte, so any text round-trips exactly) plus the special tokens ``<|endoftext|>``,
``<|im_start|>``, ``<|im_end|>``, ``<image>`` and ``<video>``. Weights come from
``torch.manual_seed(seed)``, so the same seed gives the same files and the same outputs.

Load it with ``--model llava_hf --model_args pretrained=<path>,device_map=cpu``.

``make_tiny_llava_interleave(path)`` writes the same backbones as a ``LlavaForConditionalGeneration``
with a ``LlavaProcessor`` (the llava-hf LLaVA-Interleave layout), loaded the same way.

Image placement can be checked from a CLI subprocess with the trace hook below: pass
``trace_env(trace_file, hook_dir)`` as the subprocess environment; every call of the model's
``generate`` then appends one JSON line (input ids, image token id, number of images, image sizes)
to ``trace_file``, and ``read_trace`` / ``segments`` turn those into "text, image, text, image"
sequences to assert on.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN)

# Qwen-style template that keeps text, image and video items where the messages put them.
# Message content may also be a plain string (the simple llava_hf path sends that).
INTERLEAVED_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif content['type'] == 'video' -%}{{- '<video>' -}}"
    "{%- elif content['type'] == 'text' -%}{{- content['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# The images-first layout of the llava-hf OneVision processors (as in transformers' own
# LlavaOnevision processor tests): all images of a turn, then all videos, then all texts.
# Interleaving is lost with it. Use chat_template="upstream" to test against that behaviour.
UPSTREAM_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CHAT_TEMPLATES = {"interleaved": INTERLEAVED_CHAT_TEMPLATE, "upstream": UPSTREAM_ONEVISION_CHAT_TEMPLATE}


def _tokenizer():
    """Byte-level BPE without merges: every byte is a token, so any text encodes and decodes exactly."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
    )


def make_tiny_llava_onevision(
    path: Path,
    *,
    seed: int = 0,
    image_size: int = 28,
    patch_size: int = 14,
    hidden_size: int = 32,
    image_grid_pinpoints: list[list[int]] | None = None,
    chat_template: str = "interleaved",
    reply: str | None = "ok",
) -> Path:
    """Write a tiny random LLaVA-OneVision model and processor into ``path``; return ``path``.

    ``image_grid_pinpoints`` defaults to ``[[s, s], [s, 2s], [2s, s], [2s, 2s]]`` for
    ``s = image_size``: the anyres path is exercised but an image never costs more than five
    28x28 crops. ``chat_template`` is ``"interleaved"`` (default), ``"upstream"`` or a Jinja string.

    ``reply``: the weights stay random, except that a few embedding and output rows are set so that
    greedy decoding after a prompt ending in ``"\n"`` (as ``<|im_start|>assistant\n`` does) emits
    ``reply`` and then ``<|im_end|>``: a request then costs ``len(reply) + 1`` decoding steps whatever
    ``max_new_tokens`` is. Its characters must be distinct ASCII and not ``"\n"``. ``reply=None``
    leaves the model fully random (it then rarely stops before ``max_new_tokens``).
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    s = image_size
    pinpoints = image_grid_pinpoints or [[s, s], [s, 2 * s], [2 * s, s], [2 * s, 2 * s]]
    template = CHAT_TEMPLATES.get(chat_template, chat_template)

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config, vision_config = _backbone_configs(tokenizer, ids, image_size, patch_size, hidden_size)
    config = LlavaOnevisionConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_index=ids[IMAGE_TOKEN],
        video_token_index=ids[VIDEO_TOKEN],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
    )

    _save_model(LlavaOnevisionForConditionalGeneration, config, tokenizer, ids, seed, reply, path)

    size = {"height": image_size, "width": image_size}
    image_processor = LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints, do_pad=True)
    video_processor = LlavaOnevisionVideoProcessor(size=size)
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=template,
        vision_aspect_ratio="anyres_max_9",
    )
    tokenizer.chat_template = template  # the simple llava_hf path reads the tokenizer's template
    processor.save_pretrained(path)
    return path


def make_tiny_llava_interleave(
    path: Path,
    *,
    seed: int = 0,
    image_size: int = 28,
    patch_size: int = 14,
    hidden_size: int = 32,
    chat_template: str = "interleaved",
    reply: str | None = "ok",
) -> Path:
    """Write a tiny random LLaVA-Interleave model (``LlavaForConditionalGeneration``, as the
    llava-hf ``llava-interleave-qwen`` checkpoints are) and its ``LlavaProcessor`` into ``path``.

    Same tokenizer, backbones, ``chat_template`` and ``reply`` as ``make_tiny_llava_onevision``;
    every image is resized to ``image_size`` squared, so each costs ``(image_size // patch_size) ** 2``
    image tokens. Trace it with ``target="transformers:LlavaForConditionalGeneration"``.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    template = CHAT_TEMPLATES.get(chat_template, chat_template)

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text_config, vision_config = _backbone_configs(tokenizer, ids, image_size, patch_size, hidden_size)
    config = LlavaConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_index=ids[IMAGE_TOKEN],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    _save_model(LlavaForConditionalGeneration, config, tokenizer, ids, seed, reply, path)

    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        chat_template=template,
    )
    tokenizer.chat_template = template
    processor.save_pretrained(path)
    return path


def text_config_for(tokenizer, ids: dict, hidden_size: int, max_position_embeddings: int = 4096):
    """The 1-layer Qwen2 config of the tiny models, its special ids those of ``tokenizer``."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


def _backbone_configs(tokenizer, ids: dict, image_size: int, patch_size: int, hidden_size: int):
    """The 1-layer Qwen2 text and SigLIP vision configs both tiny models share."""
    from transformers import SiglipVisionConfig

    text_config = text_config_for(tokenizer, ids, hidden_size)
    vision_config = SiglipVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        vision_use_head=False,
    )
    return text_config, vision_config


def _save_model(model_class, config, tokenizer, ids: dict, seed: int, reply: str | None, path: Path) -> None:
    import torch

    torch.manual_seed(seed)
    model = model_class(config).eval()
    if reply is not None:
        _steer(model, tokenizer, reply)
    gen = model.generation_config
    gen.bos_token_id = ids["<|endoftext|>"]
    gen.eos_token_id = ids["<|im_end|>"]
    gen.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(path)


def _steer(model, tokenizer, reply: str) -> None:
    """Make greedy decoding go ``"\n" -> reply[0] -> ... -> reply[-1] -> <|im_end|>``.

    With one layer and 0.02-scale weights, the last hidden state is close to the current token's
    embedding once that embedding is made large; an output row equal to that (unit) embedding then
    wins the argmax by a wide margin over the random rows.
    """
    import torch

    chain = ["\n", *reply]
    if len(set(chain)) != len(chain) or not all(c.isascii() for c in chain):
        raise ValueError(f"reply must be distinct ASCII characters other than newline: {reply!r}")
    byte_level = tokenizer.backend_tokenizer.pre_tokenizer  # "\n" is the token "Ċ", etc.
    ids = [tokenizer.convert_tokens_to_ids(byte_level.pre_tokenize_str(c)[0][0]) for c in chain]
    ids.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        for cur, nxt in itertools.pairwise(ids):
            direction = emb[cur] / emb[cur].norm()
            emb[cur] = 20.0 * emb[cur]
            head[nxt] = 4.0 * direction


# ---------------------------------------------------------------------------------------------
# Tracing what reaches the model, from a subprocess.


DEFAULT_TRACE_TARGET = "transformers:LlavaOnevisionForConditionalGeneration"


def install_trace_hook(trace_file: str | os.PathLike, target: str = DEFAULT_TRACE_TARGET) -> None:
    """Make every ``generate`` call of the model class ``target`` append one JSON line to ``trace_file``.

    ``target`` is ``"module:Class"``. Each line holds ``input_ids`` (one list of ints per prompt in
    the batch), ``image_token_id`` (from the model's config), ``num_images`` (first dim of
    ``pixel_values``, 0 without images), ``pixel_values_shape`` and ``image_sizes`` ((height,
    width) per image, in the order the images are matched to the image-token runs).
    """
    import importlib

    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if getattr(cls.generate, "_tiny_llava_traced", False):
        return
    original = cls.generate
    trace_file = os.fspath(trace_file)

    def generate(self, *args, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        pixel_values = kwargs.get("pixel_values")
        image_sizes = kwargs.get("image_sizes")
        config = self.config
        record = {
            "input_ids": input_ids.tolist() if input_ids is not None else None,
            "image_token_id": getattr(config, "image_token_id", getattr(config, "image_token_index", None)),
            "num_images": int(pixel_values.shape[0]) if pixel_values is not None else 0,
            "pixel_values_shape": list(pixel_values.shape) if pixel_values is not None else None,
            "image_sizes": image_sizes.tolist() if image_sizes is not None else None,
        }
        with open(trace_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return original(self, *args, **kwargs)

    generate._tiny_llava_traced = True
    cls.generate = generate


TRACE_ENV = "TINY_LLAVA_TRACE"
TRACE_TARGET_ENV = "TINY_LLAVA_TRACE_TARGET"

_SITECUSTOMIZE = """\
# Written by tests/tiny_llava.py: installs its trace hook when {env} is set.
import os as _os
if _os.environ.get({env!r}):
    import importlib.util as _ilu
    _spec = _ilu.spec_from_file_location("_tiny_llava_trace", {module!r})
    _mod = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _mod.install_trace_hook(_os.environ[{env!r}], _os.environ.get({target_env!r}) or _mod.DEFAULT_TRACE_TARGET)
"""


def trace_env(trace_file: Path, hook_dir: Path, base: dict | None = None, target: str | None = None) -> dict:
    """An environment for a subprocess (e.g. the ``lmms-eval`` CLI) that traces model inputs.

    Writes ``hook_dir/sitecustomize.py`` and puts ``hook_dir`` first on ``PYTHONPATH``; with
    ``TINY_LLAVA_TRACE=<trace_file>`` set, that interpreter patches ``generate`` at start-up (of
    ``target``, ``"module:Class"``, default the LLaVA-OneVision class). Also sets the offline
    switches, so nothing is fetched from a hub. The hook is a no-op in any interpreter without the
    variable. It shadows any other ``sitecustomize`` module on the path for that subprocess.
    """
    hook_dir = Path(hook_dir)
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(
        _SITECUSTOMIZE.format(env=TRACE_ENV, target_env=TRACE_TARGET_ENV, module=str(Path(__file__).resolve()))
    )
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook_dir), env.get("PYTHONPATH", "")) if p)
    env[TRACE_ENV] = str(trace_file)
    if target:
        env[TRACE_TARGET_ENV] = target
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    return env


def read_trace(trace_file: Path) -> list[dict]:
    """The records ``install_trace_hook`` wrote, one per ``generate`` call (empty if none)."""
    trace_file = Path(trace_file)
    if not trace_file.exists():
        return []
    return [json.loads(line) for line in trace_file.read_text(encoding="utf-8").splitlines() if line]


def image_runs(input_ids, image_token_id: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each maximal run of the image token in one prompt's ids.

    Adjacent images with nothing between them form a single run.
    """
    runs: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(list(input_ids) + [None]):
        if t == image_token_id and start is None:
            start = i
        elif t != image_token_id and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def segments(input_ids, image_token_id: int, tokenizer) -> list[str]:
    """One prompt as alternating parts: decoded text pieces and ``"<image>"`` for each image run.

    Special tokens are kept in the text (``<|im_start|>user\\n...``), so a test can assert the exact
    order, e.g. ``["<|im_start|>user\\nA: ", "<image>", " B: ", "<image>", " same?<|im_end|>..."]``.
    """
    ids = list(input_ids)
    out: list[str] = []
    pos = 0
    for start, length in image_runs(ids, image_token_id):
        if start > pos:
            out.append(tokenizer.decode(ids[pos:start], skip_special_tokens=False))
        out.append(IMAGE_TOKEN)
        pos = start + length
    if pos < len(ids):
        out.append(tokenizer.decode(ids[pos:], skip_special_tokens=False))
    return out


if __name__ == "__main__":  # python tests/tiny_llava.py OUT_DIR
    print(make_tiny_llava_onevision(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-llava-onevision")))
