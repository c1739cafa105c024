"""The `unisim-bench prepare` / `info` contract: errors, no-op re-runs, atomic writes, determinism."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.rawfix import load, prepare, run_cli, write_corrupt, write_tarball
from tests.test_builder_kadid10k import make_raw
from tests.test_builder_nights import make_raw as make_nights
from unisim_tasks.data.builder import get_builder
from unisim_tasks.data.schema import SAMPLE_FEATURES
from unisim_tasks.data.store import NotPreparedError, load_eval_set


def records(ds):
    return [dict(r, images=[im.tobytes() for im in r["images"]]) for r in ds]


def test_missing_raw_folder_names_it_and_the_layout(tmp_path, capsys):
    assert prepare("--dataset", "kadid10k", "--raw-dir", tmp_path / "nowhere", "--data-dir", tmp_path / "d") == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "dmos.csv" in err and "Expected" in err


def test_missing_raw_file_names_it_and_the_layout(tmp_path, capsys):
    raw = make_raw(tmp_path)
    (raw / "kadid10k" / "dmos.csv").unlink()
    assert prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d") == 1
    err = capsys.readouterr().err
    assert "missing file" in err and "dmos.csv" in err and "images/I{ref:02d}" in err
    assert not (tmp_path / "d" / "iqa_kadid10k").exists()


def test_corrupt_image_is_skipped_and_listed(tmp_path):
    raw = make_raw(tmp_path)
    write_corrupt(raw / "kadid10k" / "images" / "I73_01_01.png")
    assert prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d") == 0
    ds, manifest = load(tmp_path / "d", "iqa_kadid10k")
    # the 4 pairs using that image are skipped; nothing else is lost
    assert len(ds) == 56 and manifest["skipped_count"] == 4
    assert "cannot decode image" in manifest["skipped"][0]["reason"]
    assert " at 0x" not in json.dumps(manifest)  # no memory addresses: rebuilds give the same manifest
    assert all("I73_01_01" in s["item"] or "I73_01_01" in s["reason"] or s["item"].startswith("kadid10k/I73_01_01")
               for s in manifest["skipped"])


def test_same_seed_is_identical_and_other_seed_differs(tmp_path):
    raw = make_raw(tmp_path)
    for d, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / d, "--seed", seed) == 0
    (a, ma), (b, mb), (c, mc) = (load(tmp_path / d, "iqa_kadid10k") for d in "abc")
    assert ma == mb and records(a) == records(b)
    assert [r["uid"] for r in a] != [r["uid"] for r in c]
    assert sorted(r["uid"] for r in a) == sorted(r["uid"] for r in c)


def test_num_samples_takes_a_prefix_of_the_same_draw(tmp_path):
    raw = make_raw(tmp_path)
    prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "full")
    prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "few", "--num-samples", 7)
    (full, _), (few, m) = load(tmp_path / "full", "iqa_kadid10k"), load(tmp_path / "few", "iqa_kadid10k")
    assert len(few) == 7 and m["params"]["num_samples"] == 7 and m["shortfall"] == 0
    assert [r["uid"] for r in few] == [r["uid"] for r in full][:7]
    loaded = load_eval_set("iqa_kadid10k", data_dir=tmp_path / "few")
    assert loaded["uid"] == few["uid"] and set(loaded.features) == set(SAMPLE_FEATURES)


def test_rerun_is_noop_and_changed_inputs_need_overwrite(tmp_path, capsys):
    raw = make_raw(tmp_path)
    args = ["--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d"]
    assert prepare(*args) == 0
    folder = tmp_path / "d" / "iqa_kadid10k" / "test"
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    capsys.readouterr()
    assert prepare(*args) == 0
    assert "unchanged" in capsys.readouterr().out
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp

    assert prepare(*args, "--seed", 3) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((folder / "manifest.json").read_text())["seed"] == 0

    (raw / "kadid10k" / "dmos.csv").write_text((raw / "kadid10k" / "dmos.csv").read_text() + "\n")
    assert prepare(*args) == 1
    assert prepare(*args, "--overwrite") == 0
    assert "built" in capsys.readouterr().out


def test_interrupted_build_never_looks_prepared(tmp_path, monkeypatch):
    raw = make_raw(tmp_path)
    builder = get_builder("kadid10k")
    original = type(builder).candidates

    def explode(self, ctx, eval_set):
        for i, rec in enumerate(original(self, ctx, eval_set)):
            if i == 5:
                raise KeyboardInterrupt
            yield rec

    monkeypatch.setattr(type(builder), "candidates", explode)
    with pytest.raises(KeyboardInterrupt):
        prepare("--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d")
    eval_dir = tmp_path / "d" / "iqa_kadid10k"
    assert not (eval_dir / "test").exists() and not (eval_dir / "test.partial").exists()
    with pytest.raises(NotPreparedError, match="unisim-bench prepare --dataset kadid10k --split test"):
        load_eval_set("iqa_kadid10k", data_dir=tmp_path / "d")


def test_tarball_is_extracted_and_built(tmp_path):
    raw = make_raw(tmp_path)
    archive = write_tarball(raw / "kadid10k", tmp_path / "kadid10k.tar")
    assert prepare("--dataset", "kadid10k", "--raw-dir", archive, "--data-dir", tmp_path / "d") == 0
    assert len(load(tmp_path / "d", "iqa_kadid10k")[0]) == 60


@pytest.mark.parametrize(
    "name, linkname",
    [("../escaped.txt", None), ("/tmp/escaped.txt", None), ("kadid10k/dmos.csv", "/etc/passwd"),
     ("kadid10k/dmos.csv", "../../escaped.txt")],
)
def test_unsafe_tarball_is_refused(tmp_path, capsys, name, linkname):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(name)
        if linkname:
            info.type, info.linkname = tarfile.SYMTYPE, linkname
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    assert prepare("--dataset", "kadid10k", "--raw-dir", archive, "--data-dir", tmp_path / "d") == 1
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()
    assert not (tmp_path / "d").exists()  # nothing extracted, no folder left behind


def test_all_builds_what_is_there_and_lists_what_is_not_in_one_line(tmp_path):
    raw = make_raw(tmp_path)
    make_nights(tmp_path)  # raw/ holds kadid10k/ and nights/
    done = run_cli("prepare", "--dataset", "all", "--raw-dir", raw, "--data-dir", tmp_path / "d")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines[:2]) == ["img2afc_nights/test", "iqa_kadid10k/test"]
    assert all(": built" in line for line in lines[:2])
    assert len(lines) == 3 and lines[2].startswith(f"not in {raw}, so not prepared: agiqa3k (agiqa-3k/), ")
    assert "pieapp (pie-app/ or pie_app/)" in lines[2] and "nights" not in lines[2] and "kadid10k" not in lines[2]

    # a dataset that is there but fails: its one error, the others still built, exit 1
    (raw / "kadid10k" / "dmos.csv").unlink()
    done = run_cli("prepare", "--dataset", "all", "--raw-dir", raw, "--data-dir", tmp_path / "e")
    assert done.returncode == 1 and "img2afc_nights/test: built" in done.stdout
    assert done.stderr.startswith(f"error: kadid10k: missing file {raw / 'kadid10k' / 'dmos.csv'}")
    assert done.stderr.count("error:") == 1

    done = run_cli("prepare", "--dataset", "all", "--raw-dir", tmp_path / "d", "--data-dir", tmp_path / "f")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"error: no dataset's raw folder in {tmp_path / 'd'}; expected one or more of: ")


def test_bad_arguments_are_clear(tmp_path, capsys):
    assert prepare("--dataset", "nosuch", "--raw-dir", tmp_path) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no train split"):
        prepare("--dataset", "bapps", "--split", "train", "--raw-dir", tmp_path)
    with pytest.raises(SystemExit, match="--raw-dir is required"):
        prepare("--dataset", "kadid10k", "--data-dir", tmp_path / "d")


def test_download_offline_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="could not download kadid10k.tar"):
        prepare("--dataset", "kadid10k", "--download", "--data-dir", tmp_path / "d")


def test_info_lists_prepared_sets_through_the_console_script(tmp_path):
    raw = make_raw(tmp_path)
    done = run_cli("prepare", "--dataset", "kadid10k", "--raw-dir", raw, "--data-dir", tmp_path / "d")
    assert done.returncode == 0, done.stderr
    info = run_cli("info", "--data-dir", tmp_path / "d")
    assert info.returncode == 0
    line = next(l for l in info.stdout.splitlines() if l.startswith("iqa_kadid10k"))
    assert line.split()[1:3] == ["test", "60"]
