"""A read-only data dir: prepared data reads and no-op re-runs work; a write fails with one clear line.

The subprocesses run with file permissions enforced (``rawfix.permissions_held``), so a folder
without write permission refuses writes also when the tests run as root.
"""

from tests.rawfix import prepare, read_only, run_cli, run_python, write_tarball
from tests.test_builder_kadid10k import make_raw


def test_prepared_data_is_read_and_rerun_from_a_read_only_data_dir(tmp_path):
    raw = make_raw(tmp_path)
    archive = write_tarball(raw / "kadid10k", tmp_path / "kadid10k.tar")
    data = tmp_path / "d"
    assert prepare("--dataset", "kadid10k", "--raw-dir", archive, "--data-dir", data) == 0
    assert prepare("--dataset", "mini", "--data-dir", data) == 0
    with read_only(data):
        for args in (("--dataset", "kadid10k", "--raw-dir", archive), ("--dataset", "mini")):
            done = run_cli("prepare", *args, "--data-dir", data, permissions_hold=True)
            assert done.returncode == 0, done.stderr
            assert "unchanged" in done.stdout and "built" not in done.stdout
        code = (
            "from unisim_tasks.data import load_eval_set\n"
            f"print(len(load_eval_set('iqa_kadid10k', data_dir={str(data)!r})),"
            f" len(load_eval_set('img2afc_nights', data_dir={str(data)!r}, mini=True)))"
        )
        done = run_python(code, permissions_hold=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["60", "8"]


def test_writing_to_a_read_only_data_dir_fails_with_one_clear_line(tmp_path):
    raw = make_raw(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    with read_only(data):
        for target in (data, data / "new"):
            done = run_cli("prepare", "--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", target,
                           permissions_hold=True)
            assert done.returncode == 1
            assert len(done.stderr.splitlines()) == 1, done.stderr
            assert done.stderr.startswith(f"error: cannot write to the data directory {target}")
            assert "--data-dir" in done.stderr and "UNISIM_DATA_DIR" in done.stderr
        # the mini sets that lmms-eval builds on first use say the same
        code = (
            "from unisim_tasks.data import load_eval_set\n"
            f"try:\n    load_eval_set('img2afc_nights', data_dir={str(data)!r}, mini=True)\n"
            "except OSError as e:\n    print(e)"
        )
        done = run_python(code, permissions_hold=True)
        assert done.returncode == 0 and done.stdout.startswith(f"cannot write to the data directory {data}"), done
        assert "UNISIM_DATA_DIR" in done.stdout
    assert list(data.iterdir()) == []
