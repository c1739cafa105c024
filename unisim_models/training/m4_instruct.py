"""Reading and filtering a local copy of M4-Instruct (HF dataset ``lmms-lab/M4-Instruct-Data``), the
multi-image instruction data LLaVA-NeXT-Interleave was trained on and the UniSim-LL-N training mix
adds to the perceptual instructions (paper App. B.2: 500K multi-image samples).

Layout of the copy (``--m4-dir``): the release's ``m4_instruct_annotations.json`` (a JSON list of rows
in LLaVA's conversation format: ``{"id" or "sample_id", "image": ["<subset>/.../x.jpg", ...],
"conversations": [{"from": "human", "value": "...<image>..."}, {"from": "gpt", ...}, ...],
"metadata": {...}}``) next to the image folders its zips unpack to, so that every ``image`` path is a
file under the folder: ``unzip -q HQ-Edit.zip`` gives ``HQ-Edit/...``; the ``dreamsim`` subset comes
split, ``zip -s 0 dreamsim_split.zip --out dreamsim.zip`` first. A row's subset is the first folder
of its first image path (the zip it came from).

The annotation file also holds the multi-view (3D) and multi-frame rows of M4-Instruct; the subsets
in ``NOT_MULTI_IMAGE`` are left out by default, which leaves the multi-image part the paper mixes in.

Rows are checked in two steps. Over the whole file, cheaply: a row that is not a dict with an image
list of relative paths and a list of ``{"from", "value"}`` turns is ``malformed``; one whose subset is
excluded is ``excluded_subset``; one whose ``<image>`` marks (all turns together) do not number its
images is ``image_count_mismatch``; one that does not open with a human turn is
``first_turn_not_human``; one whose turns do not alternate human, gpt, ... ending with a gpt turn is
``turns_not_alternating``; one with an ``<image>`` mark in a gpt turn is ``image_mark_in_gpt_turn`` (what
LLaVA-NeXT and ``train/llnext.py`` take: images in human turns). Then, for the rows the build draws (in
its seeded order, until it has enough): ``missing_image`` (a path that is not a file under the folder)
and ``unreadable_image`` (bytes of no known image format). Every skipped row is counted by its reason,
never fatal. (The eval-duplicate check, ``eval_duplicate``, is the builder's: see ``instructions``.)
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from unisim_tasks.data.raw import sha256_file

ANNOTATIONS = "m4_instruct_annotations.json"
# Multi-view (3D) and multi-frame (video frames) subsets of the annotation file, by image folder:
# not part of the multi-image data the paper mixes in (override with ``exclude_subsets``).
NOT_MULTI_IMAGE = ("ALFRED", "nuscenes", "scannet_frames_25k", "nextqa", "star")
# The subset built from DreamSim's NIGHTS triplets, whose test images UniSim-Bench evaluates on.
EVAL_OVERLAP_SUBSET = "dreamsim"
IMAGE_TOKEN = "<image>"

# skip reasons, in the order they are checked
MALFORMED = "malformed"
EXCLUDED_SUBSET = "excluded_subset"
IMAGE_COUNT_MISMATCH = "image_count_mismatch"
FIRST_TURN_NOT_HUMAN = "first_turn_not_human"
TURNS_NOT_ALTERNATING = "turns_not_alternating"
IMAGE_MARK_IN_GPT_TURN = "image_mark_in_gpt_turn"
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
EVAL_DUPLICATE = "eval_duplicate"  # an image byte-identical to a UniSim-Bench test image (dropped by default)
SKIP_REASONS = (MALFORMED, EXCLUDED_SUBSET, IMAGE_COUNT_MISMATCH, FIRST_TURN_NOT_HUMAN, TURNS_NOT_ALTERNATING,
                IMAGE_MARK_IN_GPT_TURN, MISSING_IMAGE, UNREADABLE_IMAGE, EVAL_DUPLICATE)  # fmt: skip


class M4Error(ValueError):
    """The M4-Instruct copy cannot be read at all (said in one line)."""


@dataclass(frozen=True)
class M4Row:
    index: int  # position in the annotation file
    key: str  # the row's own id (``id``, else ``sample_id``), made unique with its index if need be
    subset: str
    images: tuple[str, ...]  # paths relative to the M4 folder
    conversations: tuple[dict, ...]  # {"from", "value"} turns


@dataclass
class M4Annotations:
    path: Path
    sha256: str
    num_rows: int
    rows: list[M4Row]  # the rows that pass the whole-file checks, in file order
    skipped: Counter  # reason -> rows
    subsets: Counter  # subset -> rows that passed the whole-file checks


def annotation_file(m4_dir: str | os.PathLike) -> Path:
    folder = Path(m4_dir).expanduser()
    path = folder / ANNOTATIONS
    if not path.is_file():
        raise M4Error(
            f"{path} not found: --m4-dir must be a local copy of the HF dataset lmms-lab/M4-Instruct-Data "
            f"({ANNOTATIONS} next to the unzipped image folders); --m4-samples 0 builds without it"
        )
    return path


def _safe_path(p: str) -> str | None:
    """The normalised relative path, or None for an absolute one or one that leaves the folder."""
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    pure = PurePosixPath(p)
    if not p or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        return None
    return p


def check_row(row, exclude: frozenset[str]) -> tuple[dict | None, str | None]:
    """The whole-file checks of one row: ``(fields, None)`` or ``(None, reason)``."""
    if not isinstance(row, dict):
        return None, MALFORMED
    images = row.get("image")
    if isinstance(images, str):
        images = [images]
    turns = row.get("conversations")
    if not isinstance(images, list) or not images or not all(isinstance(p, str) for p in images):
        return None, MALFORMED
    if not isinstance(turns, list) or not turns:
        return None, MALFORMED
    if not all(isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str)
               for t in turns):  # fmt: skip
        return None, MALFORMED
    paths = [_safe_path(p) for p in images]
    if any(p is None for p in paths):
        return None, MALFORMED
    subset = paths[0].split("/", 1)[0]
    if subset in exclude:
        return None, EXCLUDED_SUBSET
    if sum(t["value"].count(IMAGE_TOKEN) for t in turns) != len(paths):
        return None, IMAGE_COUNT_MISMATCH
    if turns[0]["from"] != "human":
        return None, FIRST_TURN_NOT_HUMAN
    if [t["from"] for t in turns] != ["human", "gpt"] * (len(turns) // 2) or len(turns) % 2:
        return None, TURNS_NOT_ALTERNATING
    if any(IMAGE_TOKEN in t["value"] for t in turns if t["from"] == "gpt"):
        return None, IMAGE_MARK_IN_GPT_TURN
    own = row.get("id", row.get("sample_id"))
    return {
        "own_id": None if own is None else str(own),
        "subset": subset,
        "images": tuple(paths),
        "conversations": tuple({"from": t["from"], "value": t["value"]} for t in turns),
    }, None


def read_annotations(m4_dir: str | os.PathLike, exclude_subsets=NOT_MULTI_IMAGE, progress: bool = True,
                     sha256: str | None = None) -> M4Annotations:  # fmt: skip
    """The rows of the copy's annotation file that pass the whole-file checks; ``sha256``: the file's, if known."""
    path = annotation_file(m4_dir)
    digest = sha256 or sha256_file(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise M4Error(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise M4Error(f"{path} must hold a JSON list of rows, not {type(data).__name__}")
    exclude = frozenset(exclude_subsets or ())
    rows, skipped, subsets, seen = [], Counter(), Counter(), set()
    for index, row in enumerate(tqdm(data, desc="M4-Instruct rows", unit="row", disable=not progress, leave=False)):
        fields, reason = check_row(row, exclude)
        if reason is not None:
            skipped[reason] += 1
            continue
        key = fields.pop("own_id") or f"row{index}"
        if key in seen:
            key = f"{key}#row{index}"
        seen.add(key)
        rows.append(M4Row(index=index, key=key, **fields))
        subsets[fields["subset"]] += 1
    return M4Annotations(path, digest, len(data), rows, skipped, subsets)


def read_image(m4_dir: Path, rel: str) -> bytes | None:
    """The bytes of an image of the copy; None if it is not a file there."""
    path = m4_dir / rel
    try:
        if not path.is_file():
            return None
        return path.read_bytes()
    except OSError:
        return None


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
_PIL_EXT = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp",
            "MPO": ".jpg", "PPM": ".ppm", "ICO": ".ico", "JPEG2000": ".jp2"}  # fmt: skip


def image_extension(data: bytes) -> str | None:
    """The file extension of the encoding ``data`` is in (from its content), or None if it is no image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return _PIL_EXT.get(im.format or "", f".{(im.format or 'img').lower()}")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
