"""The data side of ``train/llnext.py``: LLaVA conversation records, checked, measured and encoded in
the layout lmms-eval's ``llava_hf`` gives the model at evaluation, and batched for it.

A record is ``{"id", "image": [paths relative to --image_folder] (or one path), "conversations":
[{"from": "human" | "gpt", "value": ...}, ...]}``: human and gpt turns alternating (an optional
"system" turn first), ending with a gpt turn. The ``<image>`` marks of the human turns take the
record's images in order; gpt turns hold none.

Encoding. The turns become chat messages with string content (user / assistant / system), as
``llava_hf`` sends a Table 7 prompt, rendered with the in-order chat template
(``unisim_models.chat_template``) that the trained model folder is given: each ``<image>`` stays where
the text puts it, and no system turn is added. Each part of the rendering is tokenized on its own:
the text up to and including an assistant turn's header, then that turn's answer with the
tokenizer's end token (where ``llava_hf`` stops generating), and so on; the first part alone gets
the tokenizer's special tokens, as a prompt does at evaluation. The model's processor
(``AutoProcessor``) makes the image inputs and expands every ``<image>`` into that image's tokens.

Labels. Only the answers and their end tokens are learned; everything else (template tokens, user
and system turns, image tokens, padding) is -100. LLaVA-NeXT's ``preprocess_qwen`` differs: it puts
a "You are a helpful assistant." system turn first, learns each assistant turn whole
(``<|im_start|>assistant\n`` + answer + ``<|im_end|>\n``), and also learns every ``<|im_start|>``,
``<|im_end|>`` and stand-alone newline token (Qwen id 198) of the system and user turns; it moves a
turn's single ``<image>`` to the turn's start, and cuts over-long samples at ``model_max_length``.

Length. A sample's exact length (image tokens included, counted by the processor on blank images of
the sample's image sizes) is known before training; a sample longer than ``--model_max_length`` is
left out, with a count, rather than cut: a cut could end inside an image's tokens or before the answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from unisim_models.chat_template import in_order_template

from .config import TrainingError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
_TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass
class Sample:
    id: str
    messages: list[dict]  # {"role", "content"}
    images: list[Path]


def load_records(data_path: str | Path) -> list[dict]:
    """The JSON list of conversation records in ``data_path``."""
    path = Path(data_path)
    if not path.is_file():
        raise TrainingError(f"--data_path {path} not found")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TrainingError(f"--data_path {path} is not JSON: {e}") from None
    if not isinstance(records, list):
        raise TrainingError(f"--data_path {path} must hold a JSON list of conversation records")
    return records


def parse_record(record: dict, index: int, image_folder: Path, image_token: str) -> Sample:
    """The record as chat messages and image paths; a malformed one is a TrainingError naming its id."""
    sample_id = str(record.get("id", f"#{index}")) if isinstance(record, dict) else f"#{index}"

    def bad(why: str) -> TrainingError:
        return TrainingError(f"sample {sample_id}: {why}")

    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        raise bad('no "conversations" list')
    images = record.get("image", [])
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise bad('"image" must be a path or a list of paths')
    messages = []
    for turn in record["conversations"]:
        role = ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise bad(f"a turn must be {{'from': one of {sorted(ROLES)}, 'value': text}}, got {turn!r:.80}")
        messages.append({"role": role, "content": turn["value"]})
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    expected = ["user", "assistant"] * (len(turns) // 2)
    if not turns or [m["role"] for m in turns] != expected:
        raise bad("turns must alternate human, gpt, ... and end with a gpt turn (an optional system turn first)")
    if any(image_token in m["content"] for m in messages if m["role"] == "assistant"):
        raise bad(f"a gpt turn holds {image_token}: images go in human turns")
    marks = sum(m["content"].count(image_token) for m in messages)
    if marks != len(images):
        raise bad(f"{marks} {image_token} marks in its turns but {len(images)} images")
    return Sample(sample_id, messages, [image_folder / p for p in images])


class ConversationEncoder:
    """Token ids, labels and image inputs of a sample, through the model's processor (see the module doc)."""

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token = processor.image_token
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_token = self.tokenizer.eos_token
        self.template = in_order_template()
        self._image_tokens: dict[tuple, int] = {}

    def _render(self, messages: list[dict], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.template, tokenize=False, add_generation_prompt=generation_prompt
        )

    def parts(self, sample: Sample) -> list[tuple[str, bool]]:
        """The rendering as (text, learned) parts: prompts and template text, then each answer + end token."""
        messages = sample.messages
        full = self._render(messages)
        parts, done = [], 0
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(self._render(messages[:k], generation_prompt=True))
            answer = message["content"] + self.end_token
            if not full.startswith(answer, start):
                raise TrainingError(
                    f"sample {sample.id}: the chat template does not render turn {k} as the prompt so far, then "
                    f"the answer, then the tokenizer's end token {self.end_token!r}"
                )
            parts += [(full[done:start], False), (answer, True)]
            done = start + len(answer)
        parts.append((full[done:], False))
        return [p for p in parts if p[0]]

    def text_tokens(self, parts: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
        """Ids and labels with one image token per ``<image>`` mark (before the processor expands them)."""
        ids, labels = [], []
        for i, (text, learned) in enumerate(parts):
            part = self.tokenizer(text, add_special_tokens=i == 0)["input_ids"]
            ids += part
            labels += part if learned else [IGNORE_INDEX] * len(part)
        return ids, labels

    def image_tokens(self, sizes: tuple[tuple[int, int], ...]) -> int:
        """How many tokens the processor gives images of these (width, height) sizes together."""
        if sizes not in self._image_tokens:
            blanks = [Image.new("RGB", size) for size in sizes]
            ids = self.processor(text=self.image_token * len(sizes), images=blanks)["input_ids"][0]
            self._image_tokens[sizes] = sum(t == self.image_token_id for t in ids)
        return self._image_tokens[sizes]

    def length(self, sample: Sample, sizes: tuple[tuple[int, int], ...]) -> int:
        ids, _ = self.text_tokens(self.parts(sample))
        return len(ids) - len(sizes) + (self.image_tokens(sizes) if sizes else 0)

    def encode(self, sample: Sample, images: list[Image.Image]) -> dict:
        parts = self.parts(sample)
        ids, labels = self.text_tokens(parts)
        out = {}
        if images:
            text = "".join(text for text, _ in parts)
            processed = self.processor(text=text, images=images, return_tensors="pt")
            expanded = processed["input_ids"][0].tolist()
            ids, labels = self._expand(sample, ids, labels, expanded)
            out = {k: v for k, v in processed.items() if k not in _TEXT_KEYS}
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), **out}

    def _expand(self, sample: Sample, ids: list[int], labels: list[int], expanded: list[int]):
        """Each run of image tokens in ``ids`` replaced by the matching run of the processor's ``expanded``."""
        image = self.image_token_id
        runs = [len(list(run)) for is_image, run in groupby(expanded, lambda t: t == image) if is_image]
        out_ids, out_labels, k = [], [], 0
        for is_image, run in groupby(zip(ids, labels), lambda pair: pair[0] == image):
            run = list(run)
            if is_image:
                if k == len(runs):
                    break
                out_ids += [image] * runs[k]
                out_labels += [IGNORE_INDEX] * runs[k]
                k += 1
            else:
                out_ids += [t for t, _ in run]
                out_labels += [label for _, label in run]
        if k != len(runs) or out_ids.count(image) != expanded.count(image):
            raise TrainingError(f"sample {sample.id}: the processor placed its image tokens differently from the marks")
        return out_ids, out_labels


class ConversationDataset(Dataset):
    def __init__(self, samples: list[Sample], encoder: ConversationEncoder):
        self.samples = samples
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        images = []
        for path in sample.images:
            try:
                with Image.open(path) as im:
                    images.append(im.convert("RGB"))
            except OSError as e:
                raise TrainingError(f"sample {sample.id}: image {path} does not load: {e}") from None
        return self.encoder.encode(sample, images)


def _image_sizes(sample: Sample) -> tuple[tuple[tuple[int, int], ...], Path | None]:
    """(width, height) of each image from its file's header, and the first missing or unreadable file."""
    sizes = []
    for path in sample.images:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except OSError:
            return (), path
    return tuple(sizes), None


def build_dataset(
    data_path: str, image_folder: str, encoder: ConversationEncoder, max_length: int, skip_missing_images: bool
) -> ConversationDataset:
    """Every record checked (one TrainingError for the first bad one), measured and kept or left out.

    Samples with a missing or unreadable image file are counted; they stop the run unless
    ``skip_missing_images``, then they are left out. Samples longer than ``max_length`` tokens are left
    out and counted. The counts are logged.
    """
    folder = Path(image_folder)
    records = load_records(data_path)
    samples = [parse_record(r, i, folder, encoder.image_token) for i, r in enumerate(records)]
    kept, missing, too_long = [], [], 0
    for sample in samples:
        sizes, bad = _image_sizes(sample)
        if bad is not None:
            missing.append((sample.id, bad))
        elif encoder.length(sample, sizes) > max_length:
            too_long += 1
        else:
            kept.append(sample)
    if missing:
        message = (
            f"{len(missing)} of {len(samples)} samples have missing or unreadable image files under "
            f"--image_folder {folder} (first: sample {missing[0][0]}, {missing[0][1]})"
        )
        if not skip_missing_images:
            raise TrainingError(f"{message}; pass --skip_missing_images to train without them")
        logger.warning("%s: left out (--skip_missing_images)", message)
    if too_long:
        logger.warning(
            "%d of %d samples are longer than --model_max_length %d tokens: left out", too_long, len(samples), max_length
        )
    if not kept:
        raise TrainingError(f"no sample of {data_path} is left to train on")
    logger.info("training on %d of %d samples of %s", len(kept), len(samples), data_path)
    return ConversationDataset(kept, encoder)


@dataclass
class ConversationCollator:
    """Right-padded ids, labels and attention mask; each image input concatenated over the batch along
    its first axis, zero-padded on the others (e.g. LLaVA-OneVision's per-image crop count)."""

    pad_token_id: int

    def __call__(self, samples: list[dict]) -> dict:
        n = max(len(s["input_ids"]) for s in samples)
        batch = {
            "input_ids": torch.full((len(samples), n), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(samples), n), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(samples), n), dtype=torch.long),
        }
        for i, s in enumerate(samples):
            k = len(s["input_ids"])
            batch["input_ids"][i, :k] = s["input_ids"]
            batch["labels"][i, :k] = s["labels"]
            batch["attention_mask"][i, :k] = 1
        for key in dict.fromkeys(k for s in samples for k in s if k not in ("input_ids", "labels")):
            batch[key] = _concat_padded([s[key] for s in samples if key in s])
        return batch


def _concat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    shape = [sum(t.shape[0] for t in tensors), *(max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim()))]
    out = tensors[0].new_zeros(shape)
    row = 0
    for t in tensors:
        out[(slice(row, row + t.shape[0]), *(slice(0, s) for s in t.shape[1:]))] = t
        row += t.shape[0]
    return out
