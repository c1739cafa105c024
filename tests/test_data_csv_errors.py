"""A label file from which no sample can be built says why: the columns expected and found, the first bad rows."""

from tests.rawfix import run_cli
from tests.test_builder_nights import HEADER, make_raw


def test_csv_with_other_column_names_names_the_columns_and_the_first_bad_rows(tmp_path):
    raw = make_raw(tmp_path)
    data_csv = raw / "nights" / "data.csv"
    renamed = HEADER.replace("votes", "num_votes").replace("ref_path", "ref")  # left_/right_vote too
    data_csv.write_text(data_csv.read_text().replace(HEADER, renamed))
    done = run_cli("prepare", "--dataset", "nights", "--raw-dir", raw, "--data-dir", tmp_path / "d")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == f"error: nights: no img2afc_nights samples record could be built from {raw / 'nights'}"
    assert lines[1] == f"  data.csv: expected column votes not found; its columns: {renamed.replace(',', ', ')}"
    assert lines[2] == "  23 malformed rows, the first 3:"
    assert lines[3:6] == [f"    data.csv:{n}: unreadable row: KeyError('votes')" for n in (2, 3, 4)]
    assert lines[6] == f"Expected raw layout under {raw / 'nights'}:" and "columns id, left_vote" in lines[8]
    assert not (tmp_path / "d").exists()
