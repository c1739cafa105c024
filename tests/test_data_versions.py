"""Prepared sets across ``datasets`` versions: the manifest records the writing versions; sets load
the same under datasets 3.x and >= 4; a set the running version cannot read is named with the fix,
rebuilt by ``prepare`` (never "unchanged") and, if a mini set, on use.

The datasets-3.6 tests run the store in a subprocess with datasets 3.6.0 (installed from PyPI into the
pytest cache) in front of this environment's packages.
"""

import json
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
from tests.test_builder_kadid10k import make_raw
from unisim_tasks.data.builder import get_builder
from unisim_tasks.data.store import NotPreparedError, UnreadableSetError, build_eval_set, load_eval_set

REPO = Path(__file__).resolve().parents[1]
OLD = "3.6.0"
OLD_PACKAGES = (f"datasets=={OLD}", "fsspec<=2025.3.0", "dill<0.3.9", "multiprocess<0.70.17", "huggingface_hub<1.0")
# A feature type the running datasets does not know, as a reader of another major version meets one:
# under datasets 3.x the ``List`` datasets >= 4 writes; datasets >= 4 reads every earlier form, so
# there a type of no release stands in for it.
FOREIGN = "List" if int(datasets.__version__.split(".")[0]) < 4 else "NoSuchType"


def retype(folder: Path, old: str, new: str) -> None:
    """Rename feature type ``old`` to ``new`` wherever a prepared set records its features: each part's
    dataset_info.json and the schema of each of its arrow files."""
    was, now = f'"_type": "{old}"', f'"_type": "{new}"'
    for info in folder.glob("*/dataset_info.json"):
        assert was in info.read_text()
        info.write_text(info.read_text().replace(was, now))
    was, now = was.encode(), now.encode()
    for shard in folder.glob("*/*.arrow"):
        table = pa.ipc.open_stream(shard.read_bytes()).read_all()
        schema = table.schema.with_metadata({"huggingface": table.schema.metadata[b"huggingface"].replace(was, now)})
        with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)


def as_earlier_unisim_bench_wrote_it(folder: Path) -> None:
    """The set as unisim-bench wrote it under datasets >= 4 before it wrote a form 3.x reads, and
    before its manifest recorded the datasets version."""
    retype(folder, "Sequence", "List")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["datasets_version"], manifest["pyarrow_version"]
    (folder / "manifest.json").write_text(json.dumps(manifest))


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


def test_a_set_this_datasets_cannot_read_is_an_error_naming_it_the_versions_and_the_fix(tmp_path):
    data = tmp_path / "d"
    assert prepare("--dataset", "kadid10k", "--raw-dir", make_raw(tmp_path), "--data-dir", data) == 0
    retype(data / "iqa_kadid10k" / "test", "Sequence", FOREIGN)
    with pytest.raises(UnreadableSetError) as caught:
        load_eval_set("iqa_kadid10k", data_dir=data)
    message = str(caught.value)
    assert f"'iqa_kadid10k' (test) under {data} was written by datasets {datasets.__version__}" in message
    assert f"which this datasets {datasets.__version__} cannot read" in message and FOREIGN in message
    assert "unisim-bench prepare --dataset kadid10k --split test --raw-dir DIR --overwrite" in message
    assert "UNISIM_DATA_DIR" in message
    assert isinstance(caught.value, NotPreparedError)  # what callers catch for a set to prepare


def test_an_unreadable_mini_set_is_rebuilt_on_use_as_it_was_prepared(tmp_path):
    build_eval_set(get_builder("mini"), "img2afc_nights", "test", raw_root=None, root=tmp_path, seed=1)
    folder = tmp_path / "mini" / "img2afc_nights" / "test"
    before = rows(folder)
    retype(folder, "Sequence", FOREIGN)
    assert len(load_eval_set("img2afc_nights", data_dir=tmp_path, mini=True)) == 8
    assert rows(folder) == before
    assert json.loads((folder / "manifest.json").read_text())["seed"] == 1
    assert sorted(p.name for p in folder.parent.iterdir()) == ["test"]


def test_prepare_rebuilds_an_unreadable_set_instead_of_calling_it_unchanged(tmp_path, capsys):
    args = ["--dataset", "kadid10k", "--raw-dir", make_raw(tmp_path), "--data-dir", tmp_path / "d"]
    assert prepare(*args) == 0
    folder = tmp_path / "d" / "iqa_kadid10k" / "test"
    before = rows(folder)
    retype(folder, "Sequence", FOREIGN)
    capsys.readouterr()
    assert prepare(*args) == 0
    assert capsys.readouterr().out.startswith("iqa_kadid10k/test: built")
    assert rows(folder) == before
    assert prepare(*args) == 0
    assert capsys.readouterr().out.startswith("iqa_kadid10k/test: unchanged")


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


def test_sets_from_an_earlier_unisim_bench_under_datasets_3_6(tmp_path, old_datasets):
    """Written in datasets 4's form without a recorded version: a real set is an error naming the fix,
    a mini set is rebuilt on use, ``prepare`` rebuilds a real one; datasets >= 4 reads what 3.6 wrote."""
    raw, data = make_raw(tmp_path), tmp_path / "d"
    assert prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", data) == 0
    build_eval_set(get_builder("mini"), "img2afc_nights", "test", raw_root=None, root=data)
    real, mini = data / "iqa_kadid10k" / "test", data / "mini" / "img2afc_nights" / "test"
    before = {real: rows(real), mini: rows(mini)}
    for folder in (real, mini):
        as_earlier_unisim_bench_wrote_it(folder)
    out = run_old(
        old_datasets,
        "from unisim_tasks.cli import main\n"
        "from unisim_tasks.data.store import UnreadableSetError, load_eval_set\n"
        f"try:\n    load_eval_set('iqa_kadid10k', data_dir={str(data)!r})\n"
        "except UnreadableSetError as e:\n    print(e)\n"
        f"print(len(load_eval_set('img2afc_nights', data_dir={str(data)!r}, mini=True)))\n"
        f"main(['prepare', '--dataset', 'kadid10k', '--raw-dir', {str(raw)!r}, '--data-dir', {str(data)!r}])\n"
        f"print(len(load_eval_set('iqa_kadid10k', data_dir={str(data)!r})))\n",
    )
    error, mini_rows, prepared, real_rows = out.splitlines()
    assert f"'iqa_kadid10k' (test) under {data} was written by an unrecorded datasets version" in error
    assert f"which this datasets {OLD} cannot read (samples: Feature type 'List' not found" in error
    assert "unisim-bench prepare --dataset kadid10k --split test --raw-dir DIR --overwrite" in error
    assert (mini_rows, real_rows) == ("8", "60") and prepared.startswith("iqa_kadid10k/test: built")
    for folder in (real, mini):
        assert json.loads((folder / "manifest.json").read_text())["datasets_version"] == OLD
        assert rows(folder) == before[folder]
