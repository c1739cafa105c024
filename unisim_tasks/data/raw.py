"""Reading a dataset's raw release: located, validated, and every file read is hashed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import lzma
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError


class RawLayoutError(FileNotFoundError):
    """A raw folder or file is missing; the message names it and the expected layout."""


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded."""


# The raw pickles (CIFAR-100, revisitop ground truth) hold only containers and NumPy arrays, with
# NumPy 1 or 2 module paths and any protocol; nothing else may be constructed while reading them.
_PICKLE_GLOBALS = {
    (f"numpy.{core}.{module}", name)
    for core in ("core", "_core")
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


class RawDir:
    """The raw release of one dataset, rooted at its top folder (e.g. ``.../nights``).

    Every file read through it is recorded with its SHA-256 in ``files``; builders read the raw
    release only through this object so that the manifest lists exactly what a build depended on.
    """

    def __init__(self, root: str | os.PathLike, dataset: str, layout: str):
        self.root = Path(root)
        self.dataset = dataset
        self.layout = layout
        self.files: dict[str, str] = {}
        # CSV file -> (its header, the columns a builder looked up that the header lacks)
        self.csv_columns: dict[str, tuple[list[str], set[str]]] = {}

    def path(self, rel: str) -> Path:
        return self.root / rel

    def missing(self, rel: str, what: str = "file") -> RawLayoutError:
        return RawLayoutError(
            f"{self.dataset}: missing {what} {self.path(rel)}\n"
            f"Expected raw layout under {self.root}:\n{self.layout}"
        )

    def require(self, rel: str, kind: str = "file") -> Path:
        p = self.path(rel)
        ok = p.is_dir() if kind == "folder" else p.is_file()
        if not ok:
            raise self.missing(rel, kind)
        return p

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def listdir(self, rel: str = "") -> list[str]:
        """Sorted entry names of a raw folder (a missing folder is a layout error)."""
        return sorted(os.listdir(self.require(rel, "folder"))) if rel else sorted(os.listdir(self.root))

    def read_bytes(self, rel: str) -> bytes:
        data = self.require(rel).read_bytes()
        self.files[PurePosixPath(rel).as_posix()] = hashlib.sha256(data).hexdigest()
        return data

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8-sig")

    def read_json(self, rel: str) -> Any:
        try:
            return json.loads(self.read_text(rel))
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.dataset}: {self.path(rel)} is not valid JSON: {e}") from e

    def read_csv(self, rel: str, **kwargs) -> list[dict[str, str]]:
        """Rows of a CSV file as dicts, header names stripped of surrounding spaces.

        The columns a builder looks up (``row[name]``) that the header lacks are noted in
        ``csv_columns``, so that a build that gets nothing out of the file can say what it expected.
        """
        reader = csv.reader(io.StringIO(self.read_text(rel)), **kwargs)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return []
        lacking: set[str] = set()
        self.csv_columns[PurePosixPath(rel).as_posix()] = (header, lacking)
        return [_Row(zip(header, (c.strip() for c in row)), header, lacking) for row in reader if row]

    def read_pickle(self, rel: str, encoding: str = "ASCII") -> Any:
        """A pickle of plain containers and NumPy arrays; any other object is refused, not built."""
        try:
            return _ArrayUnpickler(io.BytesIO(self.read_bytes(rel)), encoding=encoding).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{self.dataset}: {self.path(rel)} is not a readable data pickle: {e}") from e

    def read_image(self, rel: str) -> bytes:
        """The file's bytes after checking that they decode as an image."""
        try:
            data = self.read_bytes(rel)
        except RawLayoutError:
            raise
        except OSError as e:
            raise CorruptImageError(f"unreadable: {e}") from e
        check_image(data)
        return data

    def open_image(self, rel: str) -> Image.Image:
        """A decoded image (for builders that compute something from pixels)."""
        data = self.read_image(rel)
        return Image.open(io.BytesIO(data))


class _Row(dict):
    """A CSV row that notes the columns looked up but absent from its file's header."""

    def __init__(self, cells, header: list[str], lacking: set[str]):
        super().__init__(cells)
        self._header, self._lacking = header, lacking

    def __missing__(self, column):
        if column not in self._header:  # not just a short row: the file has no such column
            self._lacking.add(column)
        raise KeyError(column)


def check_image(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        # PIL quotes the in-memory buffer's address; drop it so manifests stay reproducible
        reason = re.sub(r"\s*<[^>]* at 0x[0-9a-fA-F]+>", "", str(e))
        raise CorruptImageError(f"cannot decode image: {reason}") from e


def locate(raw_dir: Path, folders: tuple[str, ...]) -> Path:
    """The first ``raw_dir/<folder>`` that exists, else ``raw_dir`` itself (when it *is* that folder)."""
    return next((raw_dir / f for f in folders if (raw_dir / f).is_dir()), raw_dir)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_within(base: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(base.resolve())
        return True
    except ValueError:
        return False


def _check_members(archive: Path, tmp: Path, members: list[tarfile.TarInfo]) -> None:
    for m in members:
        name = PurePosixPath(m.name)
        target = tmp / m.name
        if name.is_absolute() or ".." in name.parts or not _is_within(tmp, target):
            raise ValueError(f"{archive}: refusing unsafe member path {m.name!r}")
        if m.isdev() or m.isfifo():
            raise ValueError(f"{archive}: refusing device or fifo member {m.name!r}")
        if m.issym() or m.islnk():
            link = PurePosixPath(m.linkname)
            link_target = (target.parent / m.linkname) if m.issym() else (tmp / m.linkname)
            if link.is_absolute() or not _is_within(tmp, link_target):
                raise ValueError(f"{archive}: refusing link {m.name!r} -> {m.linkname!r} outside the archive")


# what reading or decompressing a damaged archive raises
_DAMAGED = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def _check_complete(archive: Path) -> None:
    """Read the archive to its end; a truncated or corrupt one is a ValueError.

    ``tarfile`` silently stops at a header it cannot read (a file cut between two members, a damaged
    header), so the end-of-archive marker, a zero block where the next header would be, is checked
    too; reading on to the end checks a compressed stream's length and checksum.
    """
    with open(archive, "rb") as f:  # a file that cannot be opened is reported as such, not as damaged
        try:
            with tarfile.open(fileobj=f) as tar:
                tar.getmembers()
                tar.fileobj.seek(tar.offset)
                if tar.fileobj.read(tarfile.BLOCKSIZE) != tarfile.NUL * tarfile.BLOCKSIZE:
                    raise tarfile.ReadError("no end-of-archive marker after the last readable member")
                while tar.fileobj.read(1 << 20):
                    pass
        except _DAMAGED as e:
            raise ValueError(f"{archive}: truncated or corrupt archive ({e}); download or copy it again") from None


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tarball into ``<dest>-<SHA-256 prefix of the archive>``, refusing absolute paths,
    ``..``, links out and devices; returns that folder.

    The folder is keyed on the archive's content, so a replaced tarball is extracted afresh. The
    archive is read through before anything is extracted, and extraction goes to a fresh temp
    folder renamed into place when complete, so a partial extraction is never used.
    """
    dest = dest.with_name(f"{dest.name}-{sha256_file(archive)[:16]}")
    if dest.is_dir():
        return dest
    _check_complete(archive)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".partial", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            _check_members(archive, tmp, members)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # Python < 3.10.12 / 3.11.4: members were checked above
                tar.extractall(tmp, members=members)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(tmp)  # a concurrent run extracted the same archive first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
