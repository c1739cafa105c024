"""Helpers for tests: tiny images and running the real ``unisim-bench`` command."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import datasets
import pytest
from PIL import Image

from unisim_tasks.cli import main as cli_main


def image_bytes(color, size=(8, 8), fmt="PNG") -> bytes:
    """An encoded solid-colour image; ``color`` is an RGB tuple or a grey level."""
    buf = io.BytesIO()
    Image.new("RGB", size, color if isinstance(color, tuple) else (color,) * 3).save(buf, format=fmt)
    return buf.getvalue()


def color_of(i: int) -> tuple[int, int, int]:
    """A distinct colour per integer, so each fixture image is recognisable after loading."""
    return ((i * 37) % 256, (i * 91) % 256, (i * 53 + 7) % 256)


def write_image(path: Path, color, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    path.write_bytes(image_bytes(color, size, fmt))
    return path


def write_tarball(folder: Path, archive: Path) -> Path:
    """``archive`` (gzipped if it ends in .gz) holding ``folder`` as its top folder, as the raw releases are packed."""
    with tarfile.open(archive, "w:gz" if archive.name.endswith(".gz") else "w") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return path


def pixel(img) -> tuple[int, int, int]:
    """The top-left pixel of a loaded image (fixtures are solid colours)."""
    return img.convert("RGB").getpixel((0, 0))


def prepare(*args: str) -> int:
    """Run ``unisim-bench prepare`` in-process."""
    return cli_main(["prepare", *map(str, args)])


def run_cli(*args: str, permissions_hold: bool = False) -> subprocess.CompletedProcess:
    """Run the installed ``unisim-bench`` console script in a subprocess (with ``permissions_hold``,
    one for which a folder without write permission is read-only, also when the tests run as root)."""
    exe = Path(sys.executable).with_name("unisim-bench")
    prefix = permissions_held() if permissions_hold else []
    return subprocess.run([*prefix, str(exe), *map(str, args)], capture_output=True, text=True)


def run_python(code: str, permissions_hold: bool = False) -> subprocess.CompletedProcess:
    """Run Python code in a subprocess, like ``run_cli``."""
    prefix = permissions_held() if permissions_hold else []
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True)


def permissions_held() -> list[str]:
    """A command prefix under which file permissions are enforced: as root, ``setpriv`` drops the
    capabilities that override them (chmod alone does not stop root from writing)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no way to make a folder read-only")
    return ["setpriv", "--bounding-set=-dac_override,-fowner", "--"]


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` and everything in it without write permission, restored afterwards."""
    paths = [folder, *folder.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        yield folder
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


def load(data_dir: Path, eval_set: str, split: str = "test", mini: bool = False):
    """A prepared set as stored (the ``samples`` part, or the IR DatasetDict) and its manifest."""
    folder = Path(data_dir) / ("mini" if mini else "") / eval_set / split
    parts = datasets.load_from_disk(str(folder))
    return parts.get("samples", parts), json.loads((folder / "manifest.json").read_text())
