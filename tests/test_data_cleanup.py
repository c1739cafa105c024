"""A refused or failed `prepare` leaves nothing behind: no data dir, lock file or empty folder it created."""

import pytest

from tests.rawfix import prepare, run_cli
from tests.test_builder_kadid10k import make_raw
from unisim_tasks.data.builder import get_builder
from unisim_tasks.data.store import build_eval_set


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_num_samples_zero_is_refused_before_anything_is_created(tmp_path):
    raw = make_raw(tmp_path)
    args = ["--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d", "--num-samples", 0]
    done = run_cli("prepare", *args)
    assert done.returncode == 2 and "--num-samples: must be at least 1, not 0" in done.stderr
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="num_samples must be positive"):
        build_eval_set(get_builder("mini"), "img2afc_nights", "test", raw_root=None, root=tmp_path / "e", num_samples=0)
    assert not (tmp_path / "e").exists()


def test_failed_build_removes_its_lock_file_and_the_folders_it_created(tmp_path):
    raw = make_raw(tmp_path)
    (raw / "kadid10k" / "dmos.csv").unlink()
    done = run_cli("prepare", "--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d" / "new")
    assert done.returncode == 1 and "missing file" in done.stderr
    assert not (tmp_path / "d").exists()

    # in a data dir in use, a failed build takes out only what it added
    data = tmp_path / "used"
    assert prepare("--dataset", "mini", "--data-dir", data) == 0
    before = tree(data)
    done = run_cli("prepare", "--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", data)
    assert done.returncode == 1 and "missing file" in done.stderr
    assert tree(data) == before
