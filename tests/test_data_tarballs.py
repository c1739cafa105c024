"""Raw tarballs: a truncated or corrupt one is refused in one line and leaves nothing to reuse; a
replaced one is extracted afresh."""

import tarfile

import pytest

from tests.rawfix import load, run_cli, write_tarball
from tests.test_builder_kadid10k import make_raw


def damage(archive, how):
    """Cut ``archive`` in a member's data or between two members, or break a member's header."""
    data = bytearray(archive.read_bytes())
    if how == "gzip cut":
        archive.write_bytes(data[: len(data) * 2 // 3])
        return
    with tarfile.open(archive) as tar:
        middle = tar.getmembers()[len(tar.getmembers()) // 2]
    if how == "cut in data":
        data = data[: middle.offset_data + middle.size // 2]
    elif how == "cut between members":
        data = data[: middle.offset]
    else:  # a damaged header: its checksum no longer matches
        data[middle.offset : middle.offset + 8] = b"garbage!"
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["cut in data", "cut between members", "damaged header", "gzip cut"])
def test_damaged_tarball_is_refused_in_one_line_and_nothing_of_it_is_reused(tmp_path, how):
    raw = make_raw(tmp_path)
    archive = write_tarball(raw / "kadid10k", tmp_path / ("kadid10k.tar.gz" if how == "gzip cut" else "kadid10k.tar"))
    complete = archive.read_bytes()
    damage(archive, how)
    args = ["prepare", "--dataset", "kadid10k", "--raw-dir", archive, "--data-dir", tmp_path / "d"]
    done = run_cli(*args)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {archive}: truncated or corrupt archive (") and done.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()

    archive.write_bytes(complete)  # the download done again
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert len(load(tmp_path / "d", "iqa_kadid10k")[0]) == 60


def test_replaced_tarball_is_extracted_afresh(tmp_path):
    raw = make_raw(tmp_path)
    archive = write_tarball(raw / "kadid10k", tmp_path / "kadid10k.tar")
    args = ["prepare", "--dataset", "kadid10k", "--raw-dir", archive, "--data-dir", tmp_path / "d"]
    assert run_cli(*args).returncode == 0
    dmos = raw / "kadid10k" / "dmos.csv"
    rows = dmos.read_text().splitlines()
    dmos.write_text("\n".join(r for r in rows if not r.startswith("I74_")) + "\n")  # one reference fewer
    write_tarball(raw / "kadid10k", archive)
    done = run_cli(*args)
    assert done.returncode == 1 and "--overwrite" in done.stderr  # the new release is seen as different
    done = run_cli(*args, "--overwrite")
    assert done.returncode == 0, done.stderr
    ds, _ = load(tmp_path / "d", "iqa_kadid10k")
    assert len(ds) < 60 and not any("I74" in uid for uid in ds["uid"])
    assert len(list((tmp_path / "d" / "raw").iterdir())) == 2  # one extraction per archive content
