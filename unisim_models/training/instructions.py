"""The instruction data UniSim-LL-N is fine-tuned on (paper Sec. 3.3, App. B.2): the prepared
training sets of the four core tasks written as LLaVA conversations with varied instructions and
answers, mixed with the multi-image part of M4-Instruct (``m4_instruct``).

Output folder (``build_instruction_data(out, ...)``, ``unisim-bench instructions --out OUT``):

- ``llnext_data.json``: a JSON list, one record a line, of ``{"id", "image": [paths], "conversations":
  [{"from": "human", "value": "...<image>..."}, {"from": "gpt", "value": "..."}]}``; one ``<image>`` per
  image, in the order of ``image``. Paths are relative to OUT, so it is a ``--data_path`` for
  LLaVA-NeXT's ``llava/train/train.py`` with ``--image_folder OUT``.
- ``images/ab/abcdef....png``: every image once, named by the SHA-256 of its bytes, the bytes as they
  were (the extension is that of their encoding), shared by every record that uses it.
- ``llnext_meta.jsonl``: one line per record, same order: where it came from (task, training set, uid,
  pass, template, answer template, label, order of the alternatives, options, reference position;
  or the M4 subset and row).
- ``manifest.json``: settings, counts per source and task, templates used, reference positions, skips
  by reason, the checks made and the input checksums (see ``_manifest``).

Drawing. Each task's training sets (the CLIP trainer's lists, ``config.PAPER_DATASETS``, loaded by
``data.load_training_data``) are concatenated and read in a seeded order (pass ``p`` sorts the samples
by SHA-256 of ``(seed, "llnext_data", task, "order", p, "<eval set>/<uid>")``) until the task's count is
reached. A task with fewer usable samples than its count goes on pass by pass: every sample once per
pass before any again, a repeat with an id ending ``#r<pass>`` and its own draws. Every choice for a
sample (instruction template, answer template, whether the alternatives swap, whether the option list
is reversed, the Img-2AFC reference position 1/2/3) is a pure function of ``(seed, task, key, pass)``,
so the same inputs and seed give byte-identical files, whatever else is drawn.

Answers agree with labels by construction and by check: every answer is read back with the package's
parser, ``unisim_tasks.tasks.parsing.parse_answer``, and mapped to an alternative (``answer_choice``);
one that does not give the sample's label fails the build, naming the templates. Letters are parsed as
options (``parse_answer(answer, task, 2)``, then the option list shown); numbers as the task's parser
reads them, except Img-2AFC with the reference not first: the parser numbers Img-2AFC options from
image 2 (image 1 is the Table 7 reference), so there the answer is parsed as one of three numbered
images (``parse_answer(answer, "ooo", 3)``) and the image number mapped to the alternative shown there.

Evaluation images are never trained on: every image of every prepared test set under the data root
(mini ones included) is hashed, and a training sample or M4 row using one of them byte for byte is
reported and, unless ``keep_eval_duplicates``, dropped (a perceptual task then draws on).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tqdm.auto import tqdm

from unisim_tasks.data.raw import sha256_file
from unisim_tasks.data.sampling import Sampler
from unisim_tasks.tasks.parsing import parse_answer

from . import m4_instruct
from .config import (
    CORE_TASKS,
    PAPER_DATASETS,
    TrainConfig,
    TrainingError,
    train_eval_sets,
)

FORMAT_VERSION = 1
KIND = "unisim_llnext_instruction_data"
DATA_FILE = "llnext_data.json"
META_FILE = "llnext_meta.jsonl"
IMAGES = "images"
MANIFEST = "manifest.json"
NAMESPACE = "llnext_data"
IMAGE_TOKEN = "<image>"
# App. B.2: samples per task, and the multi-image part of M4-Instruct mixed in
PAPER_COUNTS = {"img2afc": 120_000, "it2afc": 300_000, "text2afc": 300_000, "iqa": 120_000}
PAPER_M4_SAMPLES = 500_000
NOUN = {"img2afc": "Image", "it2afc": "Image", "text2afc": "Caption", "iqa": "Image"}
LETTERS = "AB"
_BATCH = 256  # training samples read per Arrow take

# ---------------------------------------------------------------------------------------------------
# Templates (written for this project; the first of each task is its Table 7 prompt, which is what the
# benchmark asks at evaluation: with the reference at position 1 and the options in order it renders
# exactly unisim_tasks/tasks/templates/<task>.jinja).
#
# Placeholders: {marks} "<image><image>...", {spaced} "<image> <image> ...", {listed} one line
# "Image k: <image>" per image; {ref} the reference image's number and {a} < {b} the alternatives'
# (Img-2AFC); {caption} (IT-2AFC); {caption1}, {caption2} the captions in prompt order, {captionA},
# {captionB} in option order (Text-2AFC); {optA}, {optB} the option texts ("Image 3", "Caption 1").
# ``answers``: the answer kind, see ANSWERS: "letter" / "bare" (an option letter), "number" (the
# image or caption number, alone or in a sentence) or "short" (the number alone).
# ---------------------------------------------------------------------------------------------------
TEMPLATES: dict[str, list[dict]] = {
    "img2afc": [
        {"name": "table7", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\nHere are three images: {marks}. \n If image {ref} is the "
            "reference image, which image of the other two is more similar to the reference image? \n Options: \n"
            "(A) {optA} \n(B) {optB}"},
        {"name": "mc_labelled", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\n{listed}\nImage {ref} is the reference. Which of the "
            "other two images looks more like it?\nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_letter_only", "options": True, "answers": "bare", "text":
            "{marks}\nOf these three images, image {ref} is the reference. Which of image {a} and image {b} is "
            "perceptually closer to it?\n(A) {optA}\n(B) {optB}\nAnswer with the letter of the correct option."},
        {"name": "open_question", "options": False, "answers": "number", "text":
            "Here are three images: {spaced}. Taking image {ref} as the reference, which of the other two images "
            "is more similar to it?"},
        {"name": "open_named", "options": False, "answers": "number", "text":
            "Image {ref} is the reference; compare it with image {a} and image {b}.\n{marks}\nWhich of the two is "
            "closer to the reference?"},
        {"name": "open_judge", "options": False, "answers": "number", "text":
            "You are shown three images.\n{listed}\nImage {ref} is the reference. Which of image {a} and image {b} "
            "would most people find more similar to it?"},
        {"name": "open_number", "options": False, "answers": "short", "text":
            "{marks}\nThe reference is image {ref}. Which is more similar to it, image {a} or image {b}? Answer "
            "with the image number."},
    ],
    "it2afc": [
        {"name": "table7", "options": True, "answers": "letter", "text":
            "Answer the following question:\nHere are two images: {marks}, and here is the reference caption: "
            "{caption}. which of the two images is more aligned to the reference caption?\n Options:\n"
            "(A) {optA} \n(B) {optB}"},
        {"name": "mc_caption_first", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\nCaption: {caption}\nImages: {marks}\nWhich image is "
            "better aligned with the caption?\nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_letter_only", "options": True, "answers": "bare", "text":
            "{listed}\nWhich image does the text \"{caption}\" describe more accurately?\n(A) {optA}\n(B) {optB}\n"
            "Reply with A or B."},
        {"name": "open_prompt", "options": False, "answers": "number", "text":
            "A text-to-image model was given the prompt \"{caption}\" and produced these two images: {spaced}. "
            "Which image follows the prompt more faithfully?"},
        {"name": "open_question", "options": False, "answers": "number", "text":
            "Here are two images: {marks}. Which one matches the description \"{caption}\" better, image 1 or "
            "image 2?"},
        {"name": "open_number", "options": False, "answers": "short", "text":
            "{listed}\nReference caption: {caption}\nWhich image fits the caption better? Answer with the image "
            "number."},
    ],
    "text2afc": [
        {"name": "table7", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\nGiven the reference image: {marks} and two captions, "
            "caption 1: {caption1}, caption 2: {caption2} \n which caption has a better alignment with the "
            "reference image? \nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_listed", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\n{marks}\nWhich of these captions fits the image more "
            "closely?\nCaption 1: {caption1}\nCaption 2: {caption2}\nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_captions_as_options", "options": True, "answers": "bare", "text":
            "{marks}\nWhich caption matches this image better?\n(A) {captionA}\n(B) {captionB}\nReply with the "
            "letter only."},
        {"name": "open_question", "options": False, "answers": "number", "text":
            "Look at this image: {marks}\nCaption 1: {caption1}\nCaption 2: {caption2}\nWhich caption describes "
            "the image better?"},
        {"name": "open_inline", "options": False, "answers": "number", "text":
            "Here is an image: {marks}. Two captions were written for it, caption 1: \"{caption1}\" and caption 2: "
            "\"{caption2}\". Which caption is a better match for the image?"},
        {"name": "open_number", "options": False, "answers": "short", "text":
            "Reference image: {marks}\n1. {caption1}\n2. {caption2}\nWhich of the two captions above describes "
            "the reference image more accurately? Answer with the caption number."},
    ],
    "iqa": [
        {"name": "table7", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\nGiven two images: {marks} which image has a better "
            "quality? \nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_compare", "options": True, "answers": "letter", "text":
            "Answer the following multiple-choice question:\nCompare the quality of these two images: {spaced}\n"
            "Which one looks better, with fewer distortions and artifacts?\nOptions:\n(A) {optA}\n(B) {optB}"},
        {"name": "mc_letter_only", "options": True, "answers": "bare", "text":
            "{marks}\nWhich image has the better visual quality?\n(A) {optA}\n(B) {optB}\nReply with the letter "
            "only."},
        {"name": "open_question", "options": False, "answers": "number", "text":
            "{listed}\nWhich of the two images has the higher perceptual quality?"},
        {"name": "open_viewer", "options": False, "answers": "number", "text":
            "Two images are shown: {spaced}. Which one would a viewer rate as higher quality?"},
        {"name": "open_number", "options": False, "answers": "short", "text":
            "Here are two images: {marks}. Which one is of better quality? Answer with the image number."},
    ],
}  # fmt: skip

# Answer templates per kind: {L} the option letter, {n} the image / caption number, {Noun} Image / Caption.
LETTER_KINDS = ("letter", "bare")
ANSWERS: dict[str, dict] = {
    "letter": {"letter": "{L}", "paren": "({L})", "dot": "{L}.", "option": "Option {L}",
               "answer_is": "The answer is {L}.", "correct_option": "The correct option is ({L})."},
    "bare": {"letter": "{L}"},
    "short": {"noun": "{Noun} {n}", "digit": "{n}"},
    "number": {
        "img2afc": {"noun": "Image {n}", "noun_dot": "Image {n}.",
                    "more_similar": "Image {n} is more similar to the reference image.",
                    "closer": "The image closer to the reference is image {n}.",
                    "resembles": "Image {n} resembles the reference more closely.",
                    "looks_like": "Image {n} looks more like the reference image."},
        "it2afc": {"noun": "Image {n}", "noun_dot": "Image {n}.",
                   "matches": "Image {n} matches the caption better.",
                   "follows": "The image that follows the caption more closely is image {n}.",
                   "aligned": "Image {n} is better aligned with the reference caption.",
                   "depicts": "Image {n} depicts the text more faithfully."},
        "text2afc": {"noun": "Caption {n}", "noun_dot": "Caption {n}.",
                     "describes": "Caption {n} describes the image better.",
                     "accurate": "The more accurate caption is caption {n}.",
                     "aligned": "Caption {n} is better aligned with the reference image.",
                     "fits": "Caption {n} fits the picture more closely."},
        "iqa": {"noun": "Image {n}", "noun_dot": "Image {n}.",
                "better": "Image {n} has better quality.",
                "higher": "The higher-quality image is image {n}.",
                "cleaner": "Image {n} looks cleaner and sharper.",
                "of_higher": "Image {n} is of higher quality."},
    },
}  # fmt: skip

_BY_NAME = {task: {t["name"]: t for t in ts} for task, ts in TEMPLATES.items()}


def answer_templates(task: str, kind: str) -> list[tuple[str, str]]:
    """(id, text) of the answer templates of a kind for a task; ids are "<kind>:<name>"."""
    table = ANSWERS["number"][task] if kind == "number" else ANSWERS[kind]
    return [(f"{kind}:{name}", text) for name, text in table.items()]


def templates_sha256() -> str:
    return hashlib.sha256(json.dumps({"templates": TEMPLATES, "answers": ANSWERS}, sort_keys=True).encode()).hexdigest()


class InstructionDataError(ValueError):
    """A bad setting or input, or a build check that failed (said in one line)."""


# ---------------------------------------------------------------------------------------------------
# One sample: draws, rendering, the answer check
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    template: str
    answer: str  # answer template id, "<kind>:<name>"
    swapped: bool  # the two alternatives shown in the other order (label swapped with them)
    reversed_options: bool  # the option list names the second alternative first
    reference_position: int | None  # Img-2AFC: the reference's image number, 1..3


def draw(sampler: Sampler, task: str, key: str, pass_: int) -> Draw:
    k = (key, pass_)
    t = sampler.choice(TEMPLATES[task], *k, "template")
    ref = 1 + sampler.randbelow(3, *k, "reference") if task == "img2afc" else None
    return Draw(
        template=t["name"],
        answer=sampler.choice(answer_templates(task, t["answers"]), *k, "answer")[0],
        swapped=sampler.coin(*k, "swap"),
        reversed_options=t["options"] and sampler.coin(*k, "option order"),
        reference_position=ref,
    )


@dataclass
class Rendered:
    human: str
    gpt: str
    images: list  # the sample's image values in prompt order
    label: int  # index of the chosen alternative in prompt order
    order: list[int]  # order[i]: the sample's alternative shown i-th
    numbers: list[int]  # numbers[i]: the image / caption number the i-th alternative has in the prompt
    options: list[int] | None  # the numbers of options A and B (None: no option list)
    form: str  # answer kind
    cleaned_texts: int  # captions in which an "<image>" string was rewritten


def _clean(text: str) -> tuple[str, int]:
    """A caption with any literal <image> mark defused, so marks number the images."""
    return (text.replace(IMAGE_TOKEN, "image"), 1) if IMAGE_TOKEN in text else (text, 0)


def render(task: str, sample: dict, d: Draw) -> Rendered:
    """The conversation of one training sample (``ref_image`` / ``ref_text`` / ``images`` / ``texts`` /
    ``label`` as the prepared sets hold them) under the draws ``d``."""
    t = _BY_NAME[task][d.template]
    label = int(sample["label"])
    order = [1, 0] if d.swapped else [0, 1]
    if task == "text2afc":
        alternatives = [sample["texts"][o] for o in order]
        images, numbers = [sample["ref_image"]], [1, 2]
    else:
        alternatives = [sample["images"][o] for o in order]
        images, numbers = list(alternatives), [1, 2]
        if task == "img2afc":
            images.insert(d.reference_position - 1, sample["ref_image"])
            numbers = [p for p in (1, 2, 3) if p != d.reference_position]
    listed = [1, 0] if d.reversed_options else [0, 1]
    noun = NOUN[task]
    fields = {
        "marks": IMAGE_TOKEN * len(images),
        "spaced": " ".join([IMAGE_TOKEN] * len(images)),
        "listed": "\n".join(f"Image {i + 1}: {IMAGE_TOKEN}" for i in range(len(images))),
        "ref": d.reference_position, "a": numbers[0], "b": numbers[1],
        "optA": f"{noun} {numbers[listed[0]]}", "optB": f"{noun} {numbers[listed[1]]}",
    }  # fmt: skip
    cleaned = 0
    if task == "it2afc":
        fields["caption"], cleaned = _clean(sample["ref_text"])
    if task == "text2afc":
        captions = []
        for text in alternatives:
            text, c = _clean(text)
            captions.append(text)
            cleaned += c
        fields.update(caption1=captions[0], caption2=captions[1], captionA=captions[listed[0]],
                      captionB=captions[listed[1]])  # fmt: skip
    human = t["text"].format(**fields)
    chosen = order.index(label)
    answer = dict(answer_templates(task, t["answers"]))[d.answer]
    gpt = answer.format(L=LETTERS[listed.index(chosen)], n=numbers[chosen], Noun=noun)
    options = [numbers[i] for i in listed] if t["options"] else None
    return Rendered(human, gpt, images, chosen, order, numbers, options, t["answers"], cleaned)


@lru_cache(maxsize=65536)
def _parse(answer: str, task: str, n: int) -> int | None:
    return parse_answer(answer, task, n)


def answer_choice(task: str, answer: str, form: str, reference_position: int | None, numbers: list[int],
                  options: list[int] | None) -> int | None:  # fmt: skip
    """The alternative (index in prompt order) ``answer`` chooses, read by ``parse_answer``; None if none.

    ``numbers``: the image / caption number of each alternative in the prompt; ``options``: the numbers
    options A and B stand for (letter answers)."""
    if form in LETTER_KINDS:
        i = _parse(answer, task, 2)
        return None if i is None or options is None else numbers.index(options[i])
    if task == "img2afc" and reference_position != 1:
        # parse_answer reads Img-2AFC numbers as Table 7's (image 1 the reference, options images 2 and 3):
        # with the reference elsewhere, read the answer as a choice among three numbered images instead
        i = _parse(answer, "ooo", 3)
        return None if i is None or i + 1 not in numbers else numbers.index(i + 1)
    return _parse(answer, task, 2)


def check_rendered(task: str, r: Rendered, d: Draw, uid: str) -> None:
    if r.human.count(IMAGE_TOKEN) != len(r.images):
        raise InstructionDataError(
            f"{task} template {d.template!r} puts {r.human.count(IMAGE_TOKEN)} <image> marks for {len(r.images)} "
            f"images ({uid})"
        )
    got = answer_choice(task, r.gpt, r.form, d.reference_position, r.numbers, r.options)
    if got != r.label:
        where = f", reference at image {d.reference_position}" if d.reference_position else ""
        raise InstructionDataError(
            f"{task} answer template {d.answer!r} of instruction template {d.template!r} gives {r.gpt!r}, which "
            f"parse_answer reads as alternative {got} (prompt order), not the label {r.label} ({uid}{where}, "
            f"options {r.options}); change the template"
        )


def check_templates() -> int:
    """Every combination of template, answer template, label, swap, option order and reference
    position on a dummy sample, checked as the build checks samples; returns how many."""
    checked = 0
    for task in CORE_TASKS:
        sample = {"ref_image": "R", "ref_text": "a red car", "images": ["X", "Y"],
                  "texts": ["a red car", "a blue bus"]}  # fmt: skip
        for t in TEMPLATES[task]:
            for answer, _ in answer_templates(task, t["answers"]):
                for ref in (1, 2, 3) if task == "img2afc" else (None,):
                    for swapped in (False, True):
                        for rev in (False, True) if t["options"] else (False,):
                            for label in (0, 1):
                                d = Draw(t["name"], answer, swapped, rev, ref)
                                r = render(task, {**sample, "label": label}, d)
                                check_rendered(task, r, d, "template check")
                                # the alternative the answer names is the labelled one of the sample
                                if task == "text2afc":
                                    placed = r.order[r.label] == label
                                else:
                                    placed = r.images[r.numbers[r.label] - 1] == "XY"[label]
                                if not placed:
                                    raise InstructionDataError(f"{task} template {t['name']!r}: alternatives misplaced")
                                checked += 1
    return checked


# ---------------------------------------------------------------------------------------------------
# Images and evaluation sets
# ---------------------------------------------------------------------------------------------------
def _bar(progress: bool, **kw):
    return tqdm(**kw) if progress else tqdm(disable=True, **kw)


class ImageFolder:
    """Content-addressed images under ``root/images``: one file per distinct byte string."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[str, str] = {}  # sha256 -> path relative to root
        self.bytes = 0
        self._folders: set[str] = set()

    def add(self, data: bytes, digest: str, ext: str) -> str:
        rel = self.paths.get(digest)
        if rel is None:
            rel = f"{IMAGES}/{digest[:2]}/{digest}{ext}"
            path = self.root / rel
            if digest[:2] not in self._folders:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(digest[:2])
            path.write_bytes(data)
            self.paths[digest] = rel
            self.bytes += len(data)
        return rel


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def eval_sets(root: Path) -> list[dict]:
    """The prepared UniSim-Bench test sets under ``root`` (mini ones included), with their manifests' SHA-256.

    Looked up where the store puts every test set a builder writes (``<root>[/mini]/<eval set>/test``),
    not by walking the data root, which may hold this output or an M4 copy."""
    from unisim_tasks.data.builder import all_builders
    from unisim_tasks.data.store import MANIFEST as SET_MANIFEST
    from unisim_tasks.data.store import eval_set_dir

    names = sorted({e for b in all_builders().values() for e in b.outputs.get("test", {})})
    out = []
    for mini in (False, True):
        for eval_set in names:
            folder = eval_set_dir(root, eval_set, "test", mini=mini)
            if not (folder / SET_MANIFEST).is_file():
                continue
            out.append({
                "eval_set": eval_set, "split": "test", "mini": mini, "folder": folder.relative_to(root).as_posix(),
                "manifest_sha256": sha256_file(folder / SET_MANIFEST),
            })  # fmt: skip
    return out


def hash_eval_images(root: Path, sets: list[dict], progress: bool) -> tuple[set[str], list[dict]]:
    """SHA-256 of every image of the given prepared test sets; the sets with their image counts."""
    import datasets

    hashes: set[str] = set()
    checked = []
    for entry in _bar(progress, iterable=sets, desc="hashing evaluation images", unit="set", leave=False):
        parts = datasets.load_from_disk(str(root / entry["folder"]))
        parts = parts if isinstance(parts, datasets.DatasetDict) else {"samples": parts}
        n = 0
        for part in parts.values():
            for column in ("ref_image", "image", "images"):
                if column not in part.column_names:
                    continue
                for batch in part.select_columns([column]).with_format("arrow").iter(batch_size=_BATCH):
                    values = batch.column(column).to_pylist()
                    for value in values:
                        for image in value if isinstance(value, list) else [value]:
                            if image and image.get("bytes"):
                                hashes.add(_sha(image["bytes"]))
                                n += 1
        checked.append({**entry, "images": n})
    return hashes, checked


# ---------------------------------------------------------------------------------------------------
# The perceptual part
# ---------------------------------------------------------------------------------------------------
def _sample_images(task: str, row: dict) -> list[dict]:
    """A training row's images in the order the builder hashes and writes them: reference first."""
    if task == "text2afc":
        return [row["ref_image"]]
    return ([row["ref_image"]] if task == "img2afc" else []) + list(row["images"])


def _perceptual(task: str, data, count: int, seed: int, folder: ImageFolder, eval_hashes: set[str], keep: bool,
                progress: bool) -> tuple[list[tuple[dict, dict]], dict]:  # fmt: skip
    order_sampler = Sampler(seed, NAMESPACE, task, "order")
    draws = Sampler(seed, NAMESPACE, task, "draw")
    keys = data.keys
    n = len(keys)
    out: list[tuple[dict, dict]] = []
    dropped: set[int] = set()
    duplicates: set[int] = set()
    stats = {k: Counter() for k in ("templates", "answer_templates", "answer_forms", "eval_sets",
                                    "reference_positions")}  # fmt: skip
    swapped = reversed_options = listed = cleaned = repeated = examined = 0
    bar = _bar(progress, total=count, desc=f"{task} instructions", unit="sample", leave=False)
    p = 0
    while len(out) < count:
        ranked = order_sampler.child(str(p))
        order = sorted(range(n), key=lambda i: ranked.u64(keys[i]))
        used = 0
        for start in range(0, n, _BATCH):
            chunk = [i for i in order[start : start + _BATCH] if i not in dropped]
            if not chunk:
                continue
            for i, row in zip(chunk, data.samples[chunk].to_pylist()):
                if len(out) >= count:
                    break
                examined += p == 0  # each sample is checked against the test images on its first draw
                blobs = [image["bytes"] for image in _sample_images(task, row)]
                digests = [_sha(b) for b in blobs]
                if any(h in eval_hashes for h in digests):
                    duplicates.add(i)
                    if not keep:
                        dropped.add(i)
                        continue
                key = keys[i]
                d = draw(draws, task, key, p)
                paths = []
                for b, h in zip(blobs, digests):
                    ext = m4_instruct.image_extension(b)
                    if ext is None:
                        raise InstructionDataError(f"{key}: an image of this training sample is of no known format")
                    paths.append(folder.add(b, h, ext))
                shown = {**row, "ref_image": paths[0] if task in ("img2afc", "text2afc") else None,
                         "images": paths[1:] if task == "img2afc" else paths}  # fmt: skip
                r = render(task, shown, d)
                check_rendered(task, r, d, key)
                record_id = key if p == 0 else f"{key}#r{p}"
                eval_set, uid = key.split("/", 1)
                record = {"id": record_id, "image": r.images, "conversations": [
                    {"from": "human", "value": r.human}, {"from": "gpt", "value": r.gpt}]}  # fmt: skip
                meta = {"id": record_id, "source": "unisim", "task": task, "eval_set": eval_set, "uid": uid, "pass": p,
                        "template": d.template, "answer_template": d.answer, "label": r.label, "order": r.order,
                        "options": r.options, "reference_position": d.reference_position,
                        "eval_duplicate": i in duplicates}  # fmt: skip
                out.append((record, meta))
                used += 1
                stats["templates"][d.template] += 1
                stats["answer_templates"][d.answer] += 1
                stats["answer_forms"][r.form] += 1
                stats["eval_sets"][eval_set] += 1
                if d.reference_position:
                    stats["reference_positions"][str(d.reference_position)] += 1
                swapped += d.swapped
                reversed_options += d.reversed_options
                listed += r.options is not None
                cleaned += r.cleaned_texts
                repeated += p > 0
                bar.update(1)
            if len(out) >= count:
                break
        if used == 0:
            raise InstructionDataError(
                f"{task}: none of its {n} training samples is usable: every one uses an image of a UniSim-Bench "
                "test set (pass --keep-eval-duplicates to keep them)"
            )
        p += 1
    bar.close()
    summary = {
        "requested": count, "records": len(out), "available": n, "passes": p, "repeated": repeated,
        "examined": examined,  # samples read (and checked against the test images); all of them once passes > 1
        "eval_duplicates": {"found": len(duplicates), "dropped": len(dropped)},
        "per_eval_set": dict(sorted(stats["eval_sets"].items())),
        "templates": dict(sorted(stats["templates"].items())),
        "answer_templates": dict(sorted(stats["answer_templates"].items())),
        "answer_forms": dict(sorted(stats["answer_forms"].items())),
        "swapped": swapped, "options_listed": listed, "options_reversed": reversed_options,
        "captions_with_image_mark_rewritten": cleaned,
    }  # fmt: skip
    if task == "img2afc":
        summary["reference_positions"] = dict(sorted(stats["reference_positions"].items()))
    return out, summary


# ---------------------------------------------------------------------------------------------------
# The M4-Instruct part
# ---------------------------------------------------------------------------------------------------
def _m4(ann: m4_instruct.M4Annotations, m4_dir: Path, count: int, seed: int, folder: ImageFolder,
        eval_hashes: set[str], keep: bool, progress: bool) -> tuple[list[tuple[dict, dict]], dict]:  # fmt: skip
    ranked = Sampler(seed, NAMESPACE, "m4", "order")
    order = sorted(ann.rows, key=lambda row: ranked.u64(row.key))
    out: list[tuple[dict, dict]] = []
    skipped = Counter(ann.skipped)
    found, per_subset = Counter(), Counter()
    examined = 0
    bar = _bar(progress, total=min(count, len(order)), desc="M4-Instruct samples", unit="sample", leave=False)
    for row in order:
        if len(out) >= count:
            break
        examined += 1
        blobs, reason = [], None
        for rel in row.images:
            data = m4_instruct.read_image(m4_dir, rel)
            if data is None:
                reason = m4_instruct.MISSING_IMAGE
                break
            ext = m4_instruct.image_extension(data)
            if ext is None:
                reason = m4_instruct.UNREADABLE_IMAGE
                break
            blobs.append((data, _sha(data), ext))
        if reason is None and any(h in eval_hashes for _, h, _ in blobs):
            found[row.subset] += 1
            reason = None if keep else m4_instruct.EVAL_DUPLICATE
            duplicate = True
        else:
            duplicate = False
        if reason is not None:
            skipped[reason] += 1
            continue
        record_id = f"m4/{row.key}"
        record = {"id": record_id, "image": [folder.add(*b) for b in blobs], "conversations": list(row.conversations)}
        out.append((record, {"id": record_id, "source": "m4", "subset": row.subset, "row": row.index,
                             "eval_duplicate": duplicate}))  # fmt: skip
        per_subset[row.subset] += 1
        bar.update(1)
    bar.close()
    summary = {
        "requested": count, "records": len(out), "shortfall": max(0, count - len(out)),
        "rows_in_file": ann.num_rows, "eligible": len(ann.rows), "examined": examined,
        "skipped": {r: skipped[r] for r in m4_instruct.SKIP_REASONS if skipped[r]},
        "eval_duplicates": {"found": sum(found.values()), "dropped": 0 if keep else sum(found.values()),
                            "per_subset": dict(sorted(found.items()))},
        "per_subset": dict(sorted(per_subset.items())),
        "eligible_per_subset": dict(sorted(ann.subsets.items())),
    }  # fmt: skip
    return out, summary


# ---------------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------------
def parse_counts(values: list[str] | dict | None) -> dict[str, int]:
    """The per-task counts: the paper's, overridden by ``TASK=N`` strings or a mapping."""
    counts = dict(PAPER_COUNTS)
    items = values.items() if isinstance(values, dict) else [v.partition("=")[::2] for v in values or []]
    for task, n in items:
        task = str(task).strip()
        if task not in CORE_TASKS:
            raise InstructionDataError(f"--count: unknown task {task!r}; the tasks are {', '.join(CORE_TASKS)}")
        try:
            counts[task] = int(n)
        except (TypeError, ValueError):
            raise InstructionDataError(f"--count takes TASK=N (e.g. img2afc=1000), got {task}={n}") from None
        if counts[task] < 0:
            raise InstructionDataError(f"--count {task} must be >= 0, got {counts[task]}")
    return counts


def parse_datasets(values: list[str] | dict | None) -> dict[str, list[str]]:
    """The training sets of each task: the CLIP trainer's (Table 5), a task's replaced by ``TASK=D1,D2``."""
    chosen = {t: list(ds) for t, ds in PAPER_DATASETS.items()}
    items = values.items() if isinstance(values, dict) else [v.partition("=")[::2] for v in values or []]
    known = train_eval_sets()
    for task, names in items:
        task = str(task).strip()
        names = [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) else list(names)
        if task not in CORE_TASKS:
            raise InstructionDataError(f"--datasets: unknown task {task!r}; the tasks are {', '.join(CORE_TASKS)}")
        unknown = [d for d in names if d not in known[task]]
        if unknown or not names or len(set(names)) != len(names):
            raise InstructionDataError(
                f"--datasets {task}={','.join(names)}: choose distinct training sets among {', '.join(known[task])}"
            )
        chosen[task] = names
    return chosen


def _identity(seed, counts, datasets_, sources, m4, eval_entries, keep) -> dict:
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "settings": {
            "counts": counts,
            "datasets": {t: datasets_[t] for t in CORE_TASKS if counts[t] > 0},
            "m4_samples": m4["samples"] if m4 else 0,
            "m4_exclude_subsets": m4["exclude_subsets"] if m4 else None,
            "keep_eval_duplicates": keep,
        },
        "templates_sha256": templates_sha256(),
        "inputs": {
            "training_sets": sources,
            "m4_annotations": {"file": m4_instruct.ANNOTATIONS, "sha256": m4["sha256"]} if m4 else None,
            "eval_sets": [{k: e[k] for k in ("eval_set", "split", "mini", "manifest_sha256")} for e in eval_entries],
        },
    }


def _existing(out: Path) -> dict | None:
    """The manifest of a build in ``out``; None if ``out`` is absent or empty; an error for anything else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise InstructionDataError(
            f"{out} exists and is not an instruction-data build; remove it or choose another --out"
        )
    return manifest


def _same(manifest: dict, identity: dict) -> bool:
    return all(manifest.get(k) == v for k, v in identity.items())


def _differences(manifest: dict, identity: dict) -> str:
    """What differs between a build's manifest and these settings, e.g. "seed, settings.counts"."""
    out = []
    for key, value in identity.items():
        old = manifest.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out += [f"{key}.{k}" for k in value if old.get(k) != value[k]]
        elif old != value:
            out.append(key)
    return ", ".join(out)


def _refuse(out: Path, manifest: dict, identity: dict) -> InstructionDataError:
    return InstructionDataError(
        f"{out} holds a build from other settings or inputs ({_differences(manifest, identity)} differ); "
        "pass --overwrite to replace it"
    )


def build(out, *, data_dir=None, seed: int = 0, counts=None, datasets=None, m4_dir=None,
          m4_samples: int = PAPER_M4_SAMPLES, m4_exclude_subsets=None, keep_eval_duplicates: bool = False,
          overwrite: bool = False, progress: bool = True) -> tuple[str, dict]:  # fmt: skip
    """``build_instruction_data``, returning ``("built" | "unchanged", manifest)``."""
    from unisim_tasks.data.store import data_root

    from .data import load_training_data

    out = Path(out).expanduser()
    counts = parse_counts(counts)
    chosen = parse_datasets(datasets)
    if m4_samples < 0:
        raise InstructionDataError(f"--m4-samples must be >= 0, got {m4_samples}")
    if not any(counts.values()) and not m4_samples:
        raise InstructionDataError("nothing to build: every --count is 0 and --m4-samples is 0")
    if m4_samples and m4_dir is None:
        raise InstructionDataError(
            "--m4-dir is required to mix in M4-Instruct (or --m4-samples 0: the paper's v1 data)"
        )
    root = data_root(data_dir)
    tasks = [t for t in CORE_TASKS if counts[t] > 0]
    data = {}
    if tasks:
        config = TrainConfig(data_dir=None if data_dir is None else str(root), datasets={t: chosen[t] for t in tasks})
        data = load_training_data(config)  # TrainingError naming every set to prepare
    sources = [s for t in tasks for s in data[t].sources]
    m4 = None
    if m4_samples:
        m4_dir = Path(m4_dir).expanduser()
        exclude = m4_instruct.NOT_MULTI_IMAGE if m4_exclude_subsets is None else tuple(m4_exclude_subsets)
        annotations = m4_instruct.annotation_file(m4_dir)
        m4 = {"samples": m4_samples, "exclude_subsets": sorted(exclude), "sha256": sha256_file(annotations)}
    eval_entries = eval_sets(root)
    identity = _identity(seed, counts, chosen, sources, m4, eval_entries, keep_eval_duplicates)

    existing = _existing(out)
    if existing is not None:
        if _same(existing, identity):
            return "unchanged", existing
        if not overwrite:
            raise _refuse(out, existing, identity)
    checked_combinations = check_templates()

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        eval_hashes, eval_checked = hash_eval_images(root, eval_entries, progress)
        folder = ImageFolder(partial)
        records: list[tuple[dict, dict]] = []
        per_task = {}
        for task in tasks:
            got, per_task[task] = _perceptual(task, data[task], counts[task], seed, folder, eval_hashes,
                                              keep_eval_duplicates, progress)  # fmt: skip
            records += got
        m4_summary = None
        if m4:
            ann = m4_instruct.read_annotations(m4_dir, m4["exclude_subsets"], progress, sha256=m4["sha256"])
            got, m4_summary = _m4(ann, m4_dir, m4_samples, seed, folder, eval_hashes, keep_eval_duplicates, progress)
            records += got
        ids = [r["id"] for r, _ in records]
        if len(set(ids)) != len(ids):
            raise InstructionDataError("two records share an id")  # cannot happen: keys are unique per source
        mixed = Sampler(seed, NAMESPACE, "mix").order(records, key=lambda rm: rm[0]["id"])
        with open(partial / DATA_FILE, "w", encoding="utf-8") as f:
            f.write("[\n")
            bar = _bar(progress, iterable=mixed, desc="writing", unit="record", leave=False)
            for i, (record, _) in enumerate(bar):  # noqa: FURB122 (streamed, not joined: ~1 GB at paper scale)
                f.write(("" if i == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
            f.write("\n]\n")
        with open(partial / META_FILE, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(meta, ensure_ascii=False, sort_keys=True) + "\n" for _, meta in mixed)
        manifest = _manifest(identity, partial, per_task, m4_summary, folder, eval_hashes, eval_checked,
                             checked_combinations, len(records))  # fmt: skip
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _move_into_place(partial, out, identity, overwrite)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return "built", manifest


def _move_into_place(partial: Path, out: Path, identity: dict, overwrite: bool) -> None:
    existing = _existing(out)  # a build may have appeared meanwhile
    if existing is None:
        if out.exists():
            out.rmdir()  # empty
        os.replace(partial, out)
        return
    if not overwrite:
        if _same(existing, identity):
            shutil.rmtree(partial)
            return
        raise _refuse(out, existing, identity)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / "build")
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def _manifest(identity, partial, per_task, m4_summary, folder, eval_hashes, eval_checked, combinations, n) -> dict:
    unisim_records = sum(s["records"] for s in per_task.values())
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("unisim-bench")
    except PackageNotFoundError:  # not installed as a distribution (a bare checkout on sys.path)
        package = None
    return {
        **identity,
        "unisim_bench_version": package,
        "files": {"data": DATA_FILE, "meta": META_FILE, "images": f"{IMAGES}/",
                  "sha256": {DATA_FILE: sha256_file(partial / DATA_FILE), META_FILE: sha256_file(partial / META_FILE)}},
        "image_folder": "the build folder itself: image paths are relative to it (LLaVA-NeXT --image_folder OUT)",
        "num_records": n,
        "num_images": len(folder.paths),
        "image_bytes": folder.bytes,
        "sources": {
            "unisim": {"records": unisim_records, "tasks": per_task},
            "m4": m4_summary or {"records": 0, "requested": 0},
        },
        "templates": {t: [{"name": x["name"], "options": x["options"], "answers": x["answers"]} for x in ts]
                      for t, ts in TEMPLATES.items()},
        "repetition": (
            "a task with fewer usable training samples than its count is drawn pass by pass, each pass a new seeded "
            "permutation of all its samples (every sample once per pass); a repeat has the id suffix #r<pass> and "
            "its own draws of template, answer, order of the alternatives, option order and reference position. "
            "M4-Instruct rows are never repeated: a shortfall is recorded instead"
        ),
        "eval_check": {
            "sets": eval_checked,
            "distinct_images": len(eval_hashes),
            "policy": ("training samples and M4 rows with an image byte-identical to one of these test images are "
                       + ("kept (--keep-eval-duplicates) and marked in the meta file" if identity["settings"]
                          ["keep_eval_duplicates"] else "dropped")),
            "warning": None if eval_checked else "no prepared test set under the data root: nothing was checked",
        },
        "answer_check": {
            "parser": "unisim_tasks.tasks.parsing.parse_answer",
            "records_checked": unisim_records,
            "template_combinations_checked": combinations,
            "mapping": ("letters: parse_answer(answer, task, 2) -> option -> the alternative it names; numbers: "
                        "parse_answer(answer, task, 2), except Img-2AFC with the reference at image 2 or 3: "
                        "parse_answer(answer, 'ooo', 3) -> image number -> the alternative shown there"),
        },
    }  # fmt: skip


def build_instruction_data(out, **kwargs) -> dict:
    """Build (or find already built) the UniSim-LL-N instruction data in ``out``; returns its manifest.

    ``data_dir`` (prepared sets; default $UNISIM_DATA_DIR), ``seed``, ``counts`` ({task: N} or
    ["task=N"], over the paper's), ``datasets`` ({task: [datasets]}, over the CLIP trainer's lists),
    ``m4_dir`` (local M4-Instruct-Data copy), ``m4_samples`` (default 500000; 0: no M4, the paper's v1
    data), ``m4_exclude_subsets``, ``keep_eval_duplicates``, ``overwrite``, ``progress``.
    """
    return build(out, **kwargs)[1]


__all__ = [
    "ANSWERS",
    "PAPER_COUNTS",
    "PAPER_M4_SAMPLES",
    "TEMPLATES",
    "InstructionDataError",
    "TrainingError",
    "answer_choice",
    "build_instruction_data",
    "check_templates",
    "draw",
    "render",
]  # fmt: skip
