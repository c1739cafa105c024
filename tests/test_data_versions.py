"""Prepared sets across ``datasets`` versions: the manifest records the writing versions; sets load
the same under datasets 3.x and >= 4.

The datasets-3.6 test runs in a subprocess with datasets 3.6.0 (installed from PyPI into the pytest
cache) in front of this environment's packages.
"""

import os
import pickle
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import datasets
import pyarrow as pa
import pytest
from PIL import Image

from tests.rawfix import load, prepare
from unisim_tasks.data.builder import get_builder
from unisim_tasks.data.store import build_eval_set

REPO = Path(__file__).resolve().parents[1]
OLD = "3.6.0"
OLD_PACKAGES = (f"datasets=={OLD}", "fsspec<=2025.3.0", "dill<0.3.9", "multiprocess<0.70.17", "huggingface_hub<1.0")


def plain(value):
    if isinstance(value, Image.Image):
        return value.mode, value.size, value.tobytes()
    return [plain(v) for v in value] if isinstance(value, list) else value


def rows(folder) -> dict:
    """Every part of a prepared set as loaded: its columns and its rows, images decoded to pixels."""
    parts = datasets.load_from_disk(str(folder))
    return {
        name: (part.column_names, [{k: plain(v) for k, v in r.items()} for r in part]) for name, part in parts.items()
    }


@pytest.fixture(scope="module")
def old_datasets(pytestconfig) -> Path:
    """A folder holding datasets 3.6.0 and the pins it needs, to put in front of sys.path."""
    folder = pytestconfig.cache.mkdir("datasets-" + OLD)
    target = folder / "site"
    if not target.is_dir():
        partial = folder / "site.partial"
        shutil.rmtree(partial, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(partial)]
        done = subprocess.run([*pip, *OLD_PACKAGES], capture_output=True, text=True)
        if done.returncode != 0:
            try:
                urllib.request.urlopen("https://pypi.org/simple/datasets/", timeout=10).close()
            except OSError as e:
                pytest.skip(f"datasets {OLD} cannot be installed: PyPI is not reachable ({e})")
            pytest.fail(f"pip could not install datasets {OLD}:\n{done.stderr}")
        partial.rename(target)
    return target


def run_old(old_datasets: Path, code: str) -> str:
    """Run ``code`` with datasets 3.6.0 and return what it printed, after checking that version ran."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(old_datasets), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TQDM_DISABLE": "1",
    }
    code = f"import datasets\nassert datasets.__version__ == {OLD!r}, datasets.__version__\n{code}"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_manifest_records_the_writing_datasets_and_pyarrow_versions(tmp_path):
    build_eval_set(get_builder("mini"), "img2afc_nights", "test", raw_root=None, root=tmp_path)
    _, manifest = load(tmp_path, "img2afc_nights", mini=True)
    assert manifest["datasets_version"] == datasets.__version__
    assert manifest["pyarrow_version"] == pa.__version__


def test_fresh_sets_load_the_same_under_datasets_3_6(tmp_path, old_datasets):
    assert prepare("--dataset", "mini", "--data-dir", tmp_path / "d") == 0
    folders = sorted((tmp_path / "d" / "mini").glob("*/test"))
    assert [f.parent.name for f in folders] == sorted(get_builder("mini").outputs["test"])
    run_old(
        old_datasets,
        "import pickle\nfrom tests.test_data_versions import rows\n"
        f"pickle.dump([rows(f) for f in {[str(f) for f in folders]!r}], open({str(tmp_path / 'old.pkl')!r}, 'wb'))",
    )
    old = pickle.loads((tmp_path / "old.pkl").read_bytes())
    for folder, read_by_old in zip(folders, old, strict=True):
        assert read_by_old == rows(folder), folder.parent.name
