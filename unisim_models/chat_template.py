"""An in-order chat template for saved llava-hf LLaVA-Interleave / LLaVA-OneVision model folders.

The templates published with those checkpoints render every image of a turn before its text, so
lmms-eval's ``llava_hf`` shows the images of a Table 7 prompt ahead of the whole question. The
template shipped here renders a turn's text and image parts in the order the messages give them
(and keeps the ``<image>`` marks of a string content in place), with the same ChatML turns
otherwise. ``use_in_order_template`` stores it in a model folder, where ``AutoProcessor`` and
``AutoTokenizer`` (and so ``llava_hf``) load it with no extra argument.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

TEMPLATE_FILE = "llava_in_order.jinja"
# What transformers' save_pretrained writes for a processor's or tokenizer's single template.
JINJA_FILE = "chat_template.jinja"
# Older places for a template: transformers prefers the processor config's key, then the legacy
# chat_template.json, over chat_template.jinja when it loads a processor, and older transformers
# releases read the tokenizer config's key. Each one present is rewritten, so all loaders agree.
JSON_HOLDERS = ("processor_config.json", "chat_template.json", "tokenizer_config.json")
_MODEL_FOLDER_MARKS = ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


def in_order_template() -> str:
    """The Jinja text of the in-order template."""
    return files("unisim_models").joinpath("chat_templates", TEMPLATE_FILE).read_text(encoding="utf-8")


def use_in_order_template(model_dir: str | os.PathLike) -> list[Path]:
    """Make the saved HF model folder ``model_dir`` use the in-order template; return the files written."""
    folder = Path(model_dir)
    if not any((folder / name).is_file() for name in _MODEL_FOLDER_MARKS):
        raise FileNotFoundError(
            f"{folder} is not a saved model folder: it has none of {', '.join(_MODEL_FOLDER_MARKS)}"
        )
    template = in_order_template()
    jinja = folder / JINJA_FILE
    _write(jinja, template)
    written = [jinja]
    for name in JSON_HOLDERS:
        path = folder / name
        if not path.is_file():
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(config.get("chat_template"), str):
            config["chat_template"] = template
            _write(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
            written.append(path)
    return written


def _write(path: Path, text: str) -> None:
    # A hub cache snapshot links its files to shared blobs: replace the link, never write through it.
    if path.is_symlink():
        path.unlink()
    path.write_text(text, encoding="utf-8")


def main_chat_template(model_dir: str) -> str:
    """``unisim-bench chat-template MODEL_DIR``: apply ``use_in_order_template``; the line to print."""
    written = use_in_order_template(model_dir)
    return f"in-order chat template written to {', '.join(str(p) for p in written)}"
