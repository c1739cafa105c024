"""`unisim-bench report`: lmms-eval results to the paper's Tables 6 and 8.

Live: one lmms-eval run each of `dummy` (answers "A": a generative model's text) and a tiny random
`unisim_clip` on unisim_mini with --log_samples; the report's numbers are checked against a
recomputation from the per-sample logs. Synthetic results files (written here) give the golden
LaTeX / Markdown outputs and the quality-mode and bad-input cases."""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from tests.tiny_clip import make_open_clip_checkpoint
from unisim_tasks.data import EVAL_SETS
from unisim_tasks.data.store import prepared_folder
from unisim_tasks.results import ResultsError, read_runs
from unisim_tasks.results.paper import LAYOUTS, paper_rows
from unisim_tasks.results.report_cli import add_commands
from unisim_tasks.tasks.utils import CORE_GROUPS, OOD_GROUPS, process_results

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
PAPER_TEXT = ROOT.parent / "shared" / "seeds" / "001_4fcf23e2a4a70522.txt"
QUALITY = {"naive": "acc_naive", "clip-iqa": "acc_clipiqa"}


def report(capsys, *argv):
    """``unisim-bench report ARGV`` through the report's own subcommand: (status, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="unisim-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *map(str, argv)])
    status = args.func(args)
    out = capsys.readouterr()
    return status, out.out, out.err


def env_for(data):
    return {**os.environ, "UNISIM_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TQDM_DISABLE": "1"}  # fmt: skip


def lmms_eval(tmp, out, model, model_args=None, tasks="unisim_mini"):
    cmd = [str(Path(sys.executable).with_name("lmms-eval")), "--model", model, "--tasks", tasks, "--batch_size", "16",
           "--output_path", str(out), "--log_samples"]  # fmt: skip
    if model_args:
        cmd += ["--model_args", model_args]
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env_for(tmp / "data"), cwd=tmp, timeout=600
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    config, weights, name = make_open_clip_checkpoint(tmp / "ckpt")
    outs = {"dummy": tmp / "out_dummy", "clip": tmp / "out_clip"}
    done = [lmms_eval(tmp, outs["dummy"], "dummy"),
            lmms_eval(tmp, outs["clip"], "unisim_clip", f"model={name},model_config={config},pretrained={weights}")]  # fmt: skip
    for d, out in zip(done, outs.values()):
        assert list(out.glob("**/*_results.json")), d.stdout[-3000:] + d.stderr[-3000:]
    return SimpleNamespace(tmp=tmp, data=tmp / "data", **outs)


# -- the numbers: recomputed from the per-sample logs ------------------------------------------------
def docs(data, eval_set):
    split = "queries" if eval_set.startswith("ir_") else "samples"
    return datasets.load_from_disk(str(prepared_folder(eval_set, data_dir=data, mini=True)))[split]


def from_samples(run, data) -> dict[str, dict[str, float]]:
    """Per evaluation set, each metric's value recomputed from the logged responses (as fractions)."""
    out = {}
    for eval_set in EVAL_SETS:
        result = run.datasets[eval_set]
        lines = [json.loads(line) for line in result.samples_file.read_text().splitlines()]
        table = docs(data, eval_set)
        per_sample = []
        for line in lines:
            response = line["filtered_resps"] if isinstance(line["filtered_resps"], str) else line["filtered_resps"][0]
            scores = process_results(table[line["doc_id"]], [response])
            for key, value in scores.items():  # what lmms-eval logged agrees
                if key != "score" or not eval_set.startswith("ir_"):
                    assert value == pytest.approx(line[key], nan_ok=True), (eval_set, key)
            per_sample.append(scores)
        if eval_set.startswith("ir_"):  # mAP over the queries with positives, Medium and Hard averaged
            maps = [[s[k] for s in per_sample if not math.isnan(s[k])] for k in ("map_medium", "map_hard")]
            out[eval_set] = {"score": sum(sum(m) / len(m) for m in maps) / 2 if all(maps) else math.nan}
        else:
            out[eval_set] = {k: sum(s[k] for s in per_sample) / len(per_sample) for k in per_sample[0]}
    return out


def expected_row(per_set, layout) -> tuple[list[str], dict]:
    """The row the paper's protocol gives: the cells as printed, and the mode per quality task."""
    values, means, modes = {}, [], {}
    for task in layout.tasks:
        sets = [e for e, _ in task.datasets]
        metric = "score"
        if task.task in ("iqa", "paa"):
            both = {m: sum(per_set[e][k] for e in sets) / len(sets) for m, k in QUALITY.items()}
            if not any(math.isnan(v) for v in both.values()):
                modes[task.task] = "naive" if both["naive"] >= both["clip-iqa"] else "clip-iqa"
                metric = QUALITY[modes[task.task]]
        for e in sets:
            values[e] = 100 * per_set[e][metric]
        values[task.mean] = sum(values[e] for e in sets) / len(sets)
        means.append(values[task.mean])
    values[layout.average] = sum(means) / len(means)
    cells = ["-" if math.isnan(values[c]) else f"{values[c]:.1f}" for c in layout.columns]
    return cells, modes


def test_printed_numbers_equal_a_recomputation_from_the_sample_logs(live, capsys):
    runs = {r.model: r for r in read_runs([live.dummy, live.clip])}
    assert set(runs) == {"dummy", "unisim_clip"} and all(r.mini for r in runs.values())
    status, text, _ = report(capsys, live.dummy, live.clip)
    assert status == 0
    assert "mini sets: synthetic data, not comparable with the paper" in text
    lines = text.splitlines()
    for run in runs.values():
        per_set = from_samples(run, live.data)
        for layout in LAYOUTS.values():  # the run's first row is in the core table, the next in the OOD one
            cells, modes = expected_row(per_set, layout)
            row = lines.pop(next(i for i, line in enumerate(lines) if line.startswith(run.name + " ")))
            assert row.split()[1:] == cells, (run.model, layout.name)
            if run.model == "dummy":  # free text: no quality modes; retrieval does not apply
                assert not modes and (layout.name == "core" or cells[-4:] == ["-"] * 4)
            else:
                assert set(modes) == ({"iqa"} if layout.name == "core" else {"paa"})
                for task, mode in modes.items():
                    assert f"{'IQA' if task == 'iqa' else 'PAA'} {mode} (measured:" in text


# -- the quality mode: per task, not per dataset --------------------------------------------------
def edited_copy(src: Path, dest: Path, edit) -> Path:
    shutil.copytree(src, dest)
    (path,) = dest.glob("**/*_results.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return dest


def test_encoder_quality_mode_is_the_better_per_task_applied_to_all_its_datasets(live, tmp_path, capsys):
    naive = {"iqa": [0.9, 0.9, 0.9, 0.9, 0.1], "paa": [0.2, 0.2, 0.2, 0.2, 0.9]}
    clip = {"iqa": [0.5, 0.5, 0.5, 0.5, 0.6], "paa": [0.6, 0.6, 0.6, 0.6, 0.6]}

    def edit(data):
        for task in ("iqa", "paa"):
            sets = [e for e in EVAL_SETS if e.startswith(task + "_")]
            for e, n, c in zip(sets, naive[task], clip[task]):
                leaf = data["results"][f"unisim_mini_{e}"]
                leaf.update({"acc_naive,none": n, "acc_clipiqa,none": c, "score,none": 0.33, "acc,none": 0.33})

    folder = edited_copy(live.clip, tmp_path / "edited", edit)
    status, out, _ = report(capsys, folder, "--format", "json")
    assert status == 0
    core, ood = json.loads(out)
    (iqa_row,), (paa_row,) = core["rows"], ood["rows"]
    iqa = [iqa_row["values"][e] for e in EVAL_SETS if e.startswith("iqa_")]
    paa = [paa_row["values"][e] for e in LAYOUTS["ood"].eval_sets if e.startswith("paa_")]
    assert iqa == [90.0, 90.0, 90.0, 90.0, 10.0]  # naive: 74.0 on average, though PIPAL is better in clip-iqa
    assert paa == [60.0] * 5  # clip-iqa: 60.0 on average, though sharpness is better naive
    assert iqa_row["values"]["iqa_mean"] == 74.0 and paa_row["values"]["paa_mean"] == 60.0
    assert iqa_row["quality_modes"] == {"iqa": {"mode": "naive", "task_means": {"naive": 74.0, "clip-iqa": 52.0}}}
    assert paa_row["quality_modes"] == {"paa": {"mode": "clip-iqa", "task_means": {"naive": 34.0, "clip-iqa": 60.0}}}
    status, text, _ = report(capsys, folder)
    assert "IQA naive (measured: naive 74.0, clip-iqa 52.0)" in text
    assert "PAA clip-iqa (measured: naive 34.0, clip-iqa 60.0)" in text


# -- synthetic results files: golden outputs, averages, mini apart --------------------------------
def synthetic(folder: Path, name: str, *, lmm: bool, date: str = "20250101_000000", mini: bool = False,
              eval_sets=EVAL_SETS, seed: int = 0) -> Path:  # fmt: skip
    """A results file as lmms-eval writes it (no samples logged), with deterministic scores and
    group entries that are wrong on purpose: the report must not read them."""
    prefix = "unisim_mini_" if mini else "unisim_"
    results, counts = {}, {}
    for i, e in enumerate(eval_sets):
        task = e.split("_")[0]
        value = 0.40 + ((i * 37 + seed * 11) % 53) / 100
        metrics = {"acc": value, "unparsed": 0.0, "score": value}
        if task == "ir":
            metrics = {"map_medium": value, "map_hard": value - 0.2, "score": value - 0.1}
            if lmm:
                metrics = dict.fromkeys(metrics, math.nan)
        if task in ("iqa", "paa"):
            better, worse = (value, value - 0.07) if task == "iqa" else (value - 0.05, value)
            metrics |= {"acc_naive": math.nan, "acc_clipiqa": math.nan} if lmm else {"acc_naive": better,
                                                                                    "acc_clipiqa": worse}  # fmt: skip
        results[prefix + e] = (
            {"alias": f" - {prefix}{e}"}
            | {f"{k},none": v for k, v in metrics.items()}
            | {f"{k}_stderr,none": "N/A" for k in metrics}
        )
        counts[prefix + e] = {"original": 100 + i, "effective": 100 + i}
    groups = {prefix + g: {"score,none": 0.0, "alias": g} for g in ("core", "ood", "iqa", "paa", "img2afc")}
    data = {
        "results": results | groups,
        "groups": groups,
        "group_subtasks": {g: sorted(results) for g in groups} | {t: [] for t in results},
        "configs": {},
        "versions": {},
        "n-samples": counts,
        "config": {
            "model": "lmm_x" if lmm else "unisim_clip",
            "model_args": f"model={name}",
            "limit": None,
            "resolved_cli_args": {"log_samples": False},
        },
        "lmms_eval_version": "0.7.3",
        "date": date,
        "model_name": name,
        "model_name_sanitized": name,
    }
    path = folder / name / f"{date}_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture
def two_models(tmp_path):
    synthetic(tmp_path / "R", "enc_b32", lmm=False)
    synthetic(tmp_path / "R", "lmm_05b", lmm=True, seed=3)
    return tmp_path / "R"


@pytest.mark.parametrize("fmt, golden", [("latex", "report_paper.tex"), ("markdown", "report_paper.md")])
def test_golden_outputs_with_the_papers_rows(two_models, capsys, fmt, golden):
    status, out, _ = report(capsys, two_models, "--paper", "--format", fmt)
    assert status == 0
    if os.environ.get("UNISIM_UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(out)
    assert out == (GOLDEN / golden).read_text()


def test_latex_is_in_the_papers_style(two_models, capsys):
    _, tex, _ = report(capsys, two_models, "--paper", "--format", "latex", "--table", "core")
    assert tex.count(r"\begin{tabular}") == 1 and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{4}{c}{Img-2AFC} & \multicolumn{6}{c}{IT-2AFC}" in tex
    assert r"\cmidrule(lr){2-5} \cmidrule(lr){6-11} \cmidrule(lr){12-15} \cmidrule(lr){16-21}" in tex
    body = [line for line in tex.splitlines() if line.endswith(r"\\") and line[:1].isalpha()]
    # the best per column in bold: UniSim ViT-L/14's paper average 85.3 is the best core average
    assert any(line.startswith("UniSim ViT-L/14 &") and line.endswith(r"\textbf{85.3} \\") for line in body)
    assert r"enc\_b32 &" in tex and r"LLaVA-NeXT-7B$^{\clubsuit}$ &" in tex


def test_averages_are_recomputed_from_the_datasets_not_read_from_the_groups(two_models, capsys):
    _, out, _ = report(capsys, two_models, "--format", "json")
    core, ood = json.loads(out)
    for table, layout in ((core, LAYOUTS["core"]), (ood, LAYOUTS["ood"])):
        for row in table["rows"]:
            values, means = row["values"], []
            for task in layout.tasks:
                sets = [e for e, _ in task.datasets]
                if any(values[e] is None for e in sets):
                    assert values[task.mean] is None
                    means.append(None)
                    continue
                assert (
                    values[task.mean] != 0.0 and abs(values[task.mean] - sum(values[e] for e in sets) / len(sets)) < 0.1
                )
                means.append(values[task.mean])
            if None in means:
                assert values[layout.average] is None
            else:
                assert abs(values[layout.average] - sum(means) / len(means)) < 0.1
    lmm = next(r for r in ood["rows"] if r["model"] == "lmm_05b")
    assert lmm["values"]["ir_mean"] is None and lmm["values"]["ood_average"] is None  # the paper's "-"
    assert lmm["values"]["paa_mean"] is not None and lmm["quality_modes"] == {}


def test_mini_runs_are_kept_apart_from_real_ones(two_models, tmp_path, capsys):
    mini = synthetic(tmp_path / "M", "enc_mini", lmm=False, mini=True)
    mixed = json.loads(mini.read_text())
    real = json.loads(next(two_models.glob("enc_b32/*_results.json")).read_text())
    for key in ("results", "n-samples", "group_subtasks"):
        mixed[key] |= real[key]
    both = tmp_path / "mixed" / "20250101_000000_results.json"
    both.parent.mkdir()
    both.write_text(json.dumps(mixed))
    runs = read_runs(both)
    assert [(r.mini, len(r.datasets)) for r in runs] == [(False, 25), (True, 25)]
    assert all(r.results_file == both for r in runs)
    _, out, _ = report(capsys, two_models, tmp_path / "M", "--paper", "--format", "json")
    tables = json.loads(out)
    assert [(t["table"], t["mini"]) for t in tables] == [("core", False), ("core", True), ("ood", False), ("ood", True)]
    for t in tables:
        models = {r["model"] for r in t["rows"] if r["source"] == "run"}
        assert models == ({"enc_mini"} if t["mini"] else {"enc_b32", "lmm_05b"})
        assert any(r["source"] == "paper" for r in t["rows"]) != t["mini"]  # the paper's rows: real tables only


def test_runs_of_one_model_are_told_apart_by_date(tmp_path, capsys):
    synthetic(tmp_path / "R", "enc", lmm=False, date="20250101_000000")
    synthetic(tmp_path / "R", "enc", lmm=False, date="20250202_000000", seed=1)
    _, out, _ = report(capsys, tmp_path / "R", "--format", "csv", "--table", "core")
    assert [line.split(",")[4] for line in out.splitlines()[1:]] == ["enc (20250101_000000)", "enc (20250202_000000)"]


# -- the paper's rows ---------------------------------------------------------------------------
def paper_text_rows(table_number: int) -> list[list[str]]:
    """The rows of Table ``table_number`` in the paper's text: (label, cells...) with "-" kept."""
    lines = PAPER_TEXT.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {table_number}:"))
    width = len(LAYOUTS["core" if table_number == 6 else "ood"].columns)
    rows = []
    for line in lines[start + 1 :]:
        parts = [p.replace("<u>", "").replace("</u>", "") for p in line.split("\t")]
        if len(parts) == width + 1 and all(p == "-" or p.replace(".", "").isdigit() for p in parts[1:]):
            rows.append(parts)
        elif rows and not line.strip():
            break
    return rows


@pytest.mark.skipif(
    not PAPER_TEXT.is_file(),
    reason=f"the paper's text ({PAPER_TEXT}) lies beside the repository in the project's workspace, not in a clone; "
    "test_cells_of_the_paper_checked_by_hand checks cells everywhere",
)
@pytest.mark.parametrize("table, number", [("core", 6), ("ood", 8)])
def test_the_papers_rows_round_trip_to_the_tables_exactly(capsys, table, number):
    printed = paper_text_rows(number)
    shipped = paper_rows(table)
    assert len(printed) == len(shipped) == (25 if number == 6 else 24)
    _, out, _ = report(capsys, "--paper", "--table", table, "--format", "json")
    (rendered,) = json.loads(out)
    columns = LAYOUTS[table].columns
    for text_row, row, shown in zip(printed, shipped, rendered["rows"]):
        assert row.paper_label == text_row[0] and shown["model"] == row.name and shown["source"] == "paper"
        expected = [None if c == "-" else float(c) for c in text_row[1:]]
        assert [row.values[c] for c in columns] == expected, row.name
        assert [shown["values"][c] for c in columns] == expected, row.name
    _, text, _ = report(capsys, "--paper", "--table", table)
    for text_row, row in zip(printed, shipped):  # the text table prints each cell as the paper does
        (line,) = [x for x in text.splitlines() if x.startswith(row.name + (" \u2663" if row.lmm else "") + "  ")]
        assert line.split()[-len(columns) :] == [c if c == "-" else f"{float(c):.1f}" for c in text_row[1:]]


def test_cells_of_the_paper_checked_by_hand(capsys):
    """A few cells read off the paper's Tables 6 and 8."""
    core = {r.model_id: r.values for r in paper_rows("core")}
    ood = {r.model_id: r.values for r in paper_rows("ood")}
    assert core["unisim_vit_l_14"]["core_average"] == 85.3
    assert core["internvl2.5_26b"]["it2afc_agiqa3k"] == 69.3  # printed 69.30
    assert core["dreamsim_ensemble"]["img2afc_mean"] == 85.9 and core["dreamsim_ensemble"]["it2afc_hpdv2"] is None
    assert core["deqa_mplug_owl2"]["iqa_mean"] == 90.6
    assert ood["clip_vit_h_14"]["ir_rparis"] == 63.6 and ood["siglip_so400m"]["ood_average"] == 63.7
    assert ood["clip_vit_b_32"]["ooo_imagenet"] == 68.2 and ood["clip_vit_b_32"]["ooo_cifar100"] == 74.3
    assert ood["llava_next_7b"]["ir_mean"] is None and ood["compare2score_mplug_owl2"]["paa_koniq_sharpness"] == 71.4


def test_layout_covers_the_benchmark_as_the_task_groups_do():
    assert sorted(LAYOUTS["core"].eval_sets + LAYOUTS["ood"].eval_sets) == sorted(EVAL_SETS)
    assert [(t.task, len(t.datasets)) for t in LAYOUTS["core"].tasks] == list(CORE_GROUPS)
    assert [(t.task, len(t.datasets)) for t in LAYOUTS["ood"].tasks] == list(OOD_GROUPS)


# -- bad input ------------------------------------------------------------------------------------
def test_a_failed_lmms_eval_run_is_reported_with_where_to_look(tmp_path, capsys):
    done = lmms_eval(tmp_path, tmp_path / "failed", "unisim_clip", "model=ViT-B-32,hf_model=x",
                     tasks="unisim_mini_img2afc_nights")  # fmt: skip
    assert done.returncode == 0  # lmms-eval's status says nothing
    for made in (False, True):  # lmms-eval made no folder; or the folder is there, without results
        if made:
            (tmp_path / "failed" / "model").mkdir(parents=True)
        status, _, err = report(capsys, tmp_path / "failed")
        assert status == 1
        assert ("no lmms-eval results file" if made else "does not exist") in err
        assert "exits with status 0 when it fails" in err and "stderr" in err


def test_a_results_file_missing_tasks_names_them(live, tmp_path, capsys):
    def drop(data):
        for task in ("unisim_mini_iqa_pipal", "unisim_mini_ir_rparis"):
            del data["results"][task]

    folder = edited_copy(live.clip, tmp_path / "partial", drop)
    status, _, err = report(capsys, folder)
    assert status == 1 and "no results for unisim_mini_iqa_pipal" in err
    with pytest.raises(ResultsError, match="no results for unisim_mini_ir_rparis"):
        (run,) = read_runs(folder)
        run.require(LAYOUTS["ood"].eval_sets)


def test_a_run_without_one_tables_tasks_is_left_out_of_it(tmp_path, capsys):
    synthetic(tmp_path / "R", "core_only", lmm=False, eval_sets=LAYOUTS["core"].eval_sets)
    status, out, _ = report(capsys, tmp_path / "R")
    assert status == 0 and "Core 2AFC tasks" in out and "OOD generalization tasks" not in out
    status, _, err = report(capsys, tmp_path / "R", "--table", "ood")
    assert status == 1 and "no run has results for the OOD generalization tasks" in err


def test_samples_that_do_not_match_their_results_are_refused(live, tmp_path):
    folder = shutil.copytree(live.clip, tmp_path / "short")
    (samples,) = folder.glob("**/*_samples_unisim_mini_ooo_cifar100.jsonl")
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ResultsError, match=r"7 samples logged, but .* scored 8 for unisim_mini_ooo_cifar100"):
        read_runs(folder)
    samples.unlink()
    with pytest.raises(ResultsError, match="logged samples .* not next to it"):
        read_runs(folder)


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not a readable results file"), (json.dumps({"results": {}}), "no 'n-samples' entry"),
     (json.dumps({"results": {"mmmu": {}}, "n-samples": {}, "config": {}}), "no UniSim-Bench task")],
)  # fmt: skip
def test_unreadable_results_files_are_refused(tmp_path, content, message):
    (tmp_path / "x_results.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        read_runs(tmp_path)


def test_paths_that_are_not_results(tmp_path, capsys):
    with pytest.raises(ResultsError, match="does not exist"):
        read_runs(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ResultsError, match="not an lmms-eval results file"):
        read_runs(tmp_path / "notes.txt")
    status, _, err = report(capsys)
    assert status == 2 and "--paper" in err


def test_report_command_in_the_unisim_bench_cli():
    from unisim_tasks.cli import build_parser

    if "report" not in build_parser()._subparsers._group_actions[0].choices:
        pytest.skip("`report` is not wired into unisim_tasks/cli.py yet")
    done = subprocess.run([str(Path(sys.executable).with_name("unisim-bench")), "report", "--help"],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "--paper" in done.stdout and "--table" in done.stdout
