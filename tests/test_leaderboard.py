"""`unisim-bench leaderboard`: real lmms-eval runs on the mini benchmark become submissions, go to a
real git store (a bare repository) and a Hugging Face dataset stand-in, and make the static page,
checked in headless Chromium with every non-local request blocked."""

import argparse
import copy
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import redirect_stderr, redirect_stdout
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from tests.tiny_clip import make_open_clip_checkpoint
from unisim_tasks.results import page, store, submission
from unisim_tasks.results.leaderboard_cli import add_commands
from unisim_tasks.results.protocol import BENCHMARK_SETS, PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
PAPER_MODELS = 25  # Table 6 and Table 8 rows, one per model


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaderboard")
    env = {**os.environ, "UNISIM_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}  # fmt: skip
    return SimpleNamespace(tmp=tmp, env=env)


@pytest.fixture(scope="module")
def runs(work):
    """A weight-free run, a tiny random CLIP run with the N-alternative set, and a --limit 1 run, run
    side by side (after the mini sets are built once)."""
    from unisim_tasks.data.store import prepared_folder

    for eval_set in (*BENCHMARK_SETS, "it2afc_hpdv2_nafc"):
        prepared_folder(eval_set, data_dir=work.env["UNISIM_DATA_DIR"], mini=True)
    config, weights, name = make_open_clip_checkpoint(work.tmp / "clip")
    clip_args = f"model={name},model_config={config},pretrained={weights}"
    commands = {
        "classic": ["--model", "unisim_classic", "--tasks", "unisim_mini"],
        "clip": ["--model", "unisim_clip", "--model_args", clip_args, "--tasks",
                 "unisim_mini,unisim_mini_it2afc_hpdv2_nafc", "--batch_size", "16"],
        "limited": ["--model", "unisim_classic", "--tasks", "unisim_mini", "--limit", "1"],
    }  # fmt: skip
    exe = str(Path(sys.executable).with_name("lmms-eval"))
    started = {
        key: subprocess.Popen([exe, *args, "--output_path", str(work.tmp / key), "--log_samples"], env=work.env,
                              cwd=work.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for key, args in commands.items()
    }  # fmt: skip
    for key, proc in started.items():
        log = proc.communicate(timeout=600)[0]
        # lmms-eval exits 0 when an evaluation fails: the results file is the proof it ran
        assert list((work.tmp / key).glob("**/*_results.json")), log[-5000:]
    return SimpleNamespace(**{key: work.tmp / key for key in commands})


@pytest.fixture(scope="module")
def subs(runs):
    """The runs converted in process (the data root the runs read is in their results)."""
    return SimpleNamespace(
        classic=submission.convert_path(runs.classic, submitter="Ada"),
        clip=submission.convert_path(runs.clip, submitter="Ada", model_name="tiny CLIP"),
    )


def cli(*args) -> tuple[int, str, str]:
    """``unisim-bench leaderboard ARGS`` in process, through the subcommands ``add_commands`` adds."""
    parser = argparse.ArgumentParser(prog="unisim-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["leaderboard", *map(str, args)])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = parsed.func(parsed)
    return code, out.getvalue(), err.getvalue()


def bare_store(path: Path) -> Path:
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


def commits(bare: Path) -> list[str]:
    done = subprocess.run(["git", "-C", str(bare), "log", "--format=%s", "--all"], capture_output=True, text=True)
    return done.stdout.split("\n")[:-1] if done.returncode == 0 else []


def store_files(bare: Path) -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.split()


def push_file(bare: Path, path: str, text: str, tmp: Path) -> None:
    """Commit one file to the store from another clone, as another contributor would."""
    clone = tmp / f"contributor-{len(commits(bare))}"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(clone)], check=True, capture_output=True)
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_text(text)
    git = ["git", "-C", str(clone), "-c", "user.name=Bo", "-c", "user.email=bo@example.org"]
    subprocess.run([*git, "add", path], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", f"add {path}"], check=True)
    subprocess.run([*git, "push", "--quiet", "origin", "HEAD"], check=True, capture_output=True)


def edited(sub: dict, change) -> dict:
    """A copy of ``sub`` changed by ``change``, with its data version and id recomputed."""
    out = copy.deepcopy(sub)
    change(out)
    out["data"]["version"] = submission.data_version(out["data"]["sets"])
    out["id"] = submission.submission_id(out)
    return out


# -- submissions ---------------------------------------------------------------------------------------
def test_model_args_lose_secrets_and_local_paths(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"")
    args = (f"pretrained={ckpt},model=openai/clip-vit-base-patch32,token=hf_abc,hf_token=x,API_KEY=y,"
            "max_new_tokens=64,home=~/models/m,rel=./w.bin,url=https://user:pw@host/m,dtype=bfloat16")  # fmt: skip
    assert submission.public_model_args(args) == {
        "dtype": "bfloat16", "home": "<local>/m", "max_new_tokens": "64", "model": "openai/clip-vit-base-patch32",
        "pretrained": "<local>/ckpt.pt", "rel": "<local>/w.bin", "url": "https://host/m",
    }  # fmt: skip


def test_convert_describes_model_harness_protocol_data_scores_and_provenance(runs, subs, work, tmp_path):
    code, out, err = cli(
        "convert", runs.clip, "-o", tmp_path / "sub.json", "--submitter", "Ada", "--model-name", "tiny CLIP"
    )
    assert code == 0, err
    text = (tmp_path / "sub.json").read_text()
    sub = submission.parse(text)
    assert str(work.tmp) not in text  # the checkpoint paths are gone
    assert sub["model"] == {
        "name": "tiny CLIP", "lmms_eval_model": "unisim_clip", "kind": "encoder", "group": "general",
        "model_args": {"model": "unisim-tiny-test-ViT", "model_config": "<local>/unisim-tiny-test-ViT.json",
                       "pretrained": "<local>/unisim-tiny-test-ViT.pt"},
    }  # fmt: skip
    assert sub["harness"]["unisim_bench"] == version("unisim-bench")
    assert sub["harness"]["lmms_eval"] == version("lmms_eval")
    assert sub["harness"]["torch"] == version("torch") and sub["harness"]["open_clip"] == version("open_clip_torch")
    assert sub["protocol"]["version"] == PROTOCOL_VERSION and sub["protocol"]["limit"] is None
    assert sub["protocol"]["tasks"]["iqa_pipal"] == {
        "version": 1.0,
        "generation_kwargs": {"max_new_tokens": 32, "temperature": 0.0, "do_sample": False, "until": ["\n\n"]},
    }  # fmt: skip
    assert set(sub["scores"]) == {*BENCHMARK_SETS, "it2afc_hpdv2_nafc"}
    assert sub["data"]["mini"] is True and sub["data"]["sets"]["it2afc_hpdv2_nafc"]["num_alternatives"] == 4
    nights = Path(work.env["UNISIM_DATA_DIR"]) / "mini" / "img2afc_nights" / "test"
    assert sub["data"]["sets"]["img2afc_nights"]["content_sha256"] == submission.content_checksum(nights)[0]
    (results,) = runs.clip.glob("**/*_results.json")
    raw = json.loads(results.read_text())["results"]["unisim_mini_iqa_pipal"]
    assert sub["scores"]["iqa_pipal"]["metrics"]["acc_naive"] == raw["acc_naive,none"]
    assert sub["scores"]["iqa_pipal"]["n_samples"] == sub["scores"]["iqa_pipal"]["n_original"] == 8
    samples = results.with_name(results.name.replace("results.json", "samples_unisim_mini_iqa_pipal.jsonl"))
    assert sub["scores"]["iqa_pipal"]["samples_sha256"] == hashlib.sha256(samples.read_bytes()).hexdigest()
    assert sub["provenance"]["submitter"] == "Ada"
    assert sub["provenance"]["results_sha256"] == hashlib.sha256(results.read_bytes()).hexdigest()
    assert sub["id"] == subs.clip["id"]  # the same run, model and data: the same submission


def test_submitter_defaults_to_git_user_name(runs, tmp_path, monkeypatch):
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Grace Hopper\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    code, _, err = cli("convert", runs.classic, "-o", tmp_path / "sub.json")
    assert code == 0, err
    assert json.loads((tmp_path / "sub.json").read_text())["provenance"]["submitter"] == "Grace Hopper"


def test_content_checksum_is_of_the_samples_content(work, tmp_path):
    folder = Path(work.env["UNISIM_DATA_DIR"]) / "mini" / "img2afc_nights" / "test"
    samples = datasets.load_from_disk(str(folder))["samples"]
    samples = samples.cast_column("images", datasets.Sequence(datasets.Image(decode=False)))  # images as bytes

    def saved(name, change=None):
        part = samples if change is None else samples.map(change, with_indices=True)
        datasets.DatasetDict({"samples": part}).save_to_disk(str(tmp_path / name))
        return submission.content_checksum(tmp_path / name)[0]

    reference = submission.content_checksum(folder)[0]
    assert saved("same") == reference  # written again: other files, the same content
    assert saved("renamed", lambda r, i: {"images": [{**im, "path": f"x{i}.png"} for im in r["images"]]}) == reference
    assert saved("meta", lambda r, i: {"meta": "{}"}) == reference
    assert saved("label", lambda r, i: {"label": 1 - r["label"] if i == 3 else r["label"]}) != reference
    assert saved("uid", lambda r, i: {"uid": r["uid"] + "x" if i == 0 else r["uid"]}) != reference
    image = samples[5]["images"][0]
    assert saved("image", lambda r, i: {"images": [image, *r["images"][1:]] if i == 2 else r["images"]}) != reference


def test_convert_refuses_samples_of_other_data(runs, work, tmp_path):
    """Data prepared anew after the run (here: labels flipped) does not describe what the run scored."""
    data = tmp_path / "data"
    shutil.copytree(Path(work.env["UNISIM_DATA_DIR"]), data)
    folder = data / "mini" / "img2afc_bapps" / "test"
    flipped = datasets.load_from_disk(str(folder))["samples"].map(
        lambda r: {"label": 1 - r["label"]}, keep_in_memory=True
    )
    shutil.rmtree(folder / "samples")
    flipped.save_to_disk(str(folder / "samples"))
    code, _, err = cli("convert", runs.classic, "-o", tmp_path / "sub.json", "--submitter", "Ada", "--data-dir", data)
    assert code == 1 and "img2afc_bapps: the run's samples do not match" in err
    assert not (tmp_path / "sub.json").exists()


def test_convert_reports_a_missing_samples_file(runs, tmp_path):
    run = shutil.copytree(runs.classic, tmp_path / "run")
    next(run.glob("**/*_samples_unisim_mini_ooo_cifar100.jsonl")).unlink()
    code, _, err = cli("convert", run, "-o", tmp_path / "sub.json", "--submitter", "Ada")
    assert code == 1 and "samples_unisim_mini_ooo_cifar100.jsonl is not next to it" in err


def test_problems_name_partial_runs_and_other_protocols(subs):
    assert submission.problems(subs.classic) == []

    def drop(*eval_sets):
        return lambda s: [
            part.pop(e) for e in eval_sets for part in (s["scores"], s["data"]["sets"], s["protocol"]["tasks"])
        ]

    no_ir = edited(subs.classic, drop("ir_roxford"))
    assert submission.problems(no_ir) == [
        "a partial run: no results for 1 of the 25 evaluation sets (unisim_mini_ir_roxford); evaluate the whole "
        "benchmark (--tasks unisim_mini_core,unisim_mini_ood)"
    ]
    short = edited(subs.classic, lambda s: s["scores"]["iqa_pipal"].update(n_samples=7))
    assert submission.problems(short) == ["a partial run: iqa_pipal: 7 of its 8 samples evaluated"]
    old = edited(subs.classic, lambda s: s["protocol"].update(version=PROTOCOL_VERSION - 1))
    assert [p.split(";")[0] for p in submission.problems(old)] == [
        f"made under protocol version {PROTOCOL_VERSION - 1}"
    ]
    override = edited(subs.classic, lambda s: s["protocol"].update(gen_kwargs_override="max_new_tokens=64"))
    assert "--gen_kwargs max_new_tokens=64" in submission.problems(override)[0]
    unlogged = edited(subs.classic, lambda s: s["scores"]["paa_sice_brightness"].update(samples_sha256=None))
    assert submission.problems(unlogged) == ["paa_sice_brightness: no samples file; evaluate with --log_samples"]
    nafc_only = edited(subs.clip, drop(*BENCHMARK_SETS))
    assert submission.problems(nafc_only) == []


def test_parse_refuses_malformed_and_hand_edited_files(subs):
    text = submission.dumps(subs.classic)
    assert submission.parse(text) == subs.classic
    broken = copy.deepcopy(subs.classic)
    del broken["scores"]["iqa_pipal"]["n_samples"]
    bad = {
        "sub: not JSON": text[:-10],
        "sub: not a unisim-bench-submission/1 file": json.dumps({**subs.classic, "format": "other/1"}),
        "sub.scores.iqa_pipal: no 'n_samples'": json.dumps(broken),
        "sub.model.kind: 'cnn' is not one of encoder, lmm": json.dumps(
            {**subs.classic, "model": {**subs.classic["model"], "kind": "cnn"}}
        ),
        "sub: its id or data version does not match its content": json.dumps({**subs.classic, "id": "0" * 16}),
    }
    for message, content in bad.items():
        with pytest.raises(submission.SubmissionError, match=message.replace("(", r"\(")):
            submission.parse(content, where="sub")


# -- a git store -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def git_store(runs, subs, work):
    """A bare repository with the classic and the CLIP submissions, submitted through the CLI."""
    bare = bare_store(work.tmp / "store.git")
    cache = work.tmp / "cache"
    for run, name in ((runs.classic, None), (runs.clip, "tiny CLIP")):
        named = ["--model-name", name] if name else []
        code, out, err = cli("submit", run, "--store", bare, "--cache-dir", cache, "--submitter", "Ada", *named)
        assert code == 0, err
        assert "pushed to" in out
    return SimpleNamespace(bare=bare, cache=cache)


def test_submit_pushes_one_file_per_submission(git_store, subs):
    assert store_files(git_store.bare) == sorted(submission.store_path(s) for s in (subs.classic, subs.clip))
    assert commits(git_store.bare) == [
        f"Add tiny CLIP [{subs.clip['id']}]",
        f"Add unisim_classic [{subs.classic['id']}]",
    ]


def test_pull_fetches_the_store_into_a_cache(git_store, work, tmp_path):
    code, out, err = cli("pull", "--store", git_store.bare, "--cache-dir", tmp_path)
    assert code == 0, err
    assert "2 submissions" in out
    (folder,) = tmp_path.iterdir()
    assert sorted(p.name for p in (folder / "submissions").glob("*/*.json")) == sorted(
        Path(p).name for p in store_files(git_store.bare)
    )
    push_file(git_store.bare, "README.md", "a store\n", work.tmp)  # another contributor's commit
    assert cli("pull", "--store", git_store.bare, "--cache-dir", tmp_path)[0] == 0
    assert (folder / "README.md").read_text() == "a store\n"


def test_duplicates_are_refused_and_nothing_written(git_store, runs, tmp_path):
    before = commits(git_store.bare)
    code, _, err = cli(
        "submit", runs.classic, "--store", git_store.bare, "--cache-dir", git_store.cache, "--submitter", "Cy"
    )
    assert (
        code == 1
        and "a duplicate: the store has this model, model_args, protocol and data as submissions/unisim_classic/" in err
    )
    assert (
        cli("convert", runs.clip, "-o", tmp_path / "clip.json", "--submitter", "Cy", "--model-name", "renamed")[0] == 0
    )
    code, _, err = cli("validate", tmp_path / "clip.json", "--store", git_store.bare, "--cache-dir", git_store.cache)
    assert code == 1 and "a duplicate" in err  # another display name is still the same model
    assert commits(git_store.bare) == before


def test_partial_runs_are_refused_and_nothing_written(git_store, runs):
    before = commits(git_store.bare)
    code, _, err = cli(
        "submit", runs.limited, "--store", git_store.bare, "--cache-dir", git_store.cache, "--submitter", "Cy"
    )
    assert code == 1
    assert (
        "a partial run: lmms-eval ran with --limit 1.0" in err or "a partial run: lmms-eval ran with --limit 1;" in err
    )
    assert "img2afc_nights: 1 of its 8 samples evaluated" in err
    assert commits(git_store.bare) == before


def test_other_data_under_the_same_identity_is_refused(git_store, subs, tmp_path):
    def other_data(s):
        s["model"]["model_args"].update(metric="l2")  # not a duplicate
        s["data"]["sets"]["iqa_koniq10k"].update(content_sha256="f" * 64)

    other = edited(subs.classic, other_data)
    (tmp_path / "other.json").write_text(submission.dumps(other))
    code, _, err = cli("validate", tmp_path / "other.json", "--store", git_store.bare, "--cache-dir", git_store.cache)
    assert code == 1 and "iqa_koniq10k: other data than the store's" in err and "ffffffffffff" in err
    reseeded = edited(other, lambda s: s["data"]["sets"]["iqa_koniq10k"].update(seed=1))  # another data identity
    (tmp_path / "reseeded.json").write_text(submission.dumps(reseeded))
    code, out, err = cli(
        "validate", tmp_path / "reseeded.json", "--store", git_store.bare, "--cache-dir", git_store.cache
    )
    assert code == 0, err


def test_a_malformed_submission_in_the_store_is_a_clear_error(runs, work, tmp_path):
    bare = bare_store(tmp_path / "broken.git")
    push_file(bare, "submissions/x/broken.json", '{"format": "unisim-bench-submission/1", "id": 3}', tmp_path)
    before = commits(bare)
    for args in (("pull",), ("build", "--out", tmp_path / "site"), ("submit", runs.classic, "--submitter", "Cy")):
        code, _, err = cli(*args, "--store", bare, "--cache-dir", tmp_path / "cache")
        assert code == 1
        assert "the store holds a malformed submission: submissions/x/broken.json.id: expected str, found 3" in err
    assert commits(bare) == before and not (tmp_path / "site").exists()


def test_a_store_that_is_not_a_git_repository_is_a_clear_error(runs, tmp_path):
    (tmp_path / "plain").mkdir()
    for spec in (tmp_path / "plain", tmp_path / "absent"):
        code, _, err = cli(
            "submit", runs.classic, "--store", spec, "--cache-dir", tmp_path / "cache", "--submitter", "Cy"
        )
        assert code == 1 and f"{spec} is not a git repository that can be read" in err
    assert list((tmp_path / "plain").iterdir()) == []


# -- a Hugging Face dataset store (stand-in) -----------------------------------------------------------
class StandInHfApi:
    """Records what the store asks of the Hub; ``main`` holds the dataset's files, which only a merge
    (never done here) could change."""

    def __init__(self, main: dict[str, str]):
        self.main, self.commits, self.prs = dict(main), [], []

    def snapshot_download(self, repo_id, *, repo_type, local_dir, allow_patterns):
        assert repo_type == "dataset" and allow_patterns == ["submissions/**"]
        for path, text in self.main.items():
            (Path(local_dir) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / path).write_text(text)
        return local_dir

    def get_repo_discussions(self, repo_id, *, repo_type, discussion_type, discussion_status):
        assert (repo_type, discussion_type, discussion_status) == ("dataset", "pull_request", "open")
        return iter(self.prs)

    def create_commit(self, repo_id, operations, *, commit_message, repo_type, create_pr=None, revision=None, **kw):
        files = {op.path_in_repo: op.path_or_fileobj.decode() for op in operations}
        self.commits.append({"repo_id": repo_id, "files": files, "create_pr": create_pr, "revision": revision,
                             "repo_type": repo_type, "message": commit_message})  # fmt: skip
        if create_pr is not True:
            self.main.update(files)  # a write to main: the test fails on it below
        num = len(self.prs) + 1
        self.prs.append(SimpleNamespace(num=num, title=commit_message))
        return SimpleNamespace(pr_url=f"https://huggingface.co/datasets/{repo_id}/discussions/{num}")


def test_hf_store_opens_a_pull_request_and_never_writes_main(subs, tmp_path):
    existing = {submission.store_path(subs.classic): submission.dumps(subs.classic)}
    api = StandInHfApi(existing)
    hf = store.open_store("hf://datasets/org/board", tmp_path, api=api)
    where = store.submit(hf, subs.clip)
    assert where == "pull request https://huggingface.co/datasets/org/board/discussions/1"
    (commit,) = api.commits
    assert commit["create_pr"] is True and commit["revision"] is None and commit["repo_type"] == "dataset"
    assert commit["repo_id"] == "org/board"
    assert commit["files"] == {submission.store_path(subs.clip): submission.dumps(subs.clip)}
    assert api.main == existing
    with pytest.raises(submission.SubmissionError, match="proposed in open pull request #1 of org/board"):
        store.submit(hf, subs.clip)
    with pytest.raises(submission.SubmissionError, match="a duplicate: the store has"):
        store.submit(hf, subs.classic)
    assert len(api.commits) == 1 and api.main == existing
    broken = StandInHfApi({**existing, "submissions/x/y.json": "{"})
    with pytest.raises(store.StoreError, match="malformed submission: submissions/x/y.json: not JSON"):
        store.submit(store.open_store("hf://datasets/org/board", tmp_path, api=broken), subs.clip)
    assert broken.commits == []


def test_publish_uploads_the_site_as_a_static_space(tmp_path):
    calls = []
    api = SimpleNamespace(create_repo=lambda *a, **k: calls.append(("create_repo", a, k)),
                          upload_folder=lambda **k: calls.append(("upload_folder", (), k)))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="holds no index.html"):
        page.publish(tmp_path, "org/board", api=api)
    (tmp_path / "index.html").write_text("<html></html>")
    assert page.publish(tmp_path, "org/board", api=api) == "https://huggingface.co/spaces/org/board"
    assert calls[0] == ("create_repo", ("org/board",), {"repo_type": "space", "space_sdk": "static", "exist_ok": True})
    assert calls[1][0] == "upload_folder" and calls[1][2]["folder_path"] == str(tmp_path)
    assert calls[1][2]["repo_id"] == "org/board" and calls[1][2]["repo_type"] == "space"


# -- the page --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(git_store, subs, work):
    """The page of the git store, with one submission of an older protocol pushed beside."""
    old = edited(
        subs.classic,
        lambda s: (s["protocol"].update(version=PROTOCOL_VERSION - 1), s["model"].update(name="old classic")),
    )
    push_file(git_store.bare, submission.store_path(old), submission.dumps(old), work.tmp)
    out = work.tmp / "site"
    code, _, err = cli("build", "--store", git_store.bare, "--cache-dir", git_store.cache, "--out", out)
    assert code == 0, err
    return out


def test_build_writes_the_page_tables_and_figures(site, subs):
    names = sorted(p.name for p in site.iterdir())
    assert names == ["fig3_general.svg", "fig3_specialized.svg", "fig4_nafc.svg", "index.html", "leaderboard.csv",
                     "leaderboard.md", "leaderboard.tex"]  # fmt: skip
    csv_lines = (site / "leaderboard.csv").read_text().splitlines()
    assert sum(",run," in line and ",tiny CLIP," in line for line in csv_lines) == 2  # core and OOD rows
    assert "\\toprule" in (site / "leaderboard.tex").read_text()
    assert "| tiny CLIP |" in (site / "leaderboard.md").read_text()
    fig4 = (site / "fig4_nafc.svg").read_text()
    accuracy = subs.clip["scores"]["it2afc_hpdv2_nafc"]["metrics"]["score"]
    assert fig4.startswith("<svg") and f"tiny CLIP (mini), N=4: {100 * accuracy:.1f}%" in fig4
    html = (site / "index.html").read_text()
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_fig3_is_kendalls_tau_between_task_means_across_a_groups_models():
    from scipy.stats import kendalltau

    from unisim_tasks.results.paper import paper_rows

    rows = page._paper_page_rows()
    maps = page.fig3(rows)
    general = {r.model_id: r.values for r in paper_rows("core") if r.group == "general"}
    ood = {r.model_id: r.values for r in paper_rows("ood")}
    pairs = [(v["img2afc_mean"], ood[m]["ooo_mean"]) for m, v in general.items() if m in ood]
    tau = kendalltau(*zip(*pairs)).statistic
    assert f"Img-2AFC / OOO: {tau:.2f}</title>" in maps["general"]
    assert f"over {len(general)} models ({len(general)} paper, 0 submitted)" in maps["general"]
    assert "IQA / IQA: 1.00</title>" in maps["specialized"]


def test_fig4_says_so_when_there_is_no_n_alternative_run(subs):
    assert "No N-alternative results yet" in page.fig4([("a.json", subs.classic)])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright (the dev extra)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no {CHROMIUM}: apt-get install -y chromium")
    return sync_playwright


def test_page_in_a_real_browser(site, tmp_path):
    sync_playwright = _browser()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    blocked, errors = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            view = browser.new_page(viewport={"width": 1500, "height": 1100})
            view.on("pageerror", lambda e: errors.append(str(e)))

            def route(r):
                if r.request.url.startswith(("file://", "http://127.0.0.1:", "http://localhost:")):
                    return r.continue_()
                blocked.append(r.request.url)
                return r.abort()

            view.route("**/*", route)
            view.goto(url)
            check_page(view)
            view.set_viewport_size({"width": 1920, "height": 1080})
            view.reload()
            view.locator("select#filter-tasks").select_option("core")  # Table 6, its average in view
            view.locator("#table-main th[data-key='core_average']").click()  # the best first
            view.mouse.move(0, 0)
            shot = tmp_path / "leaderboard.png"
            view.screenshot(path=str(shot))
            print(f"screenshot: {shot}")
            if os.environ.get("UNISIM_UPDATE_SCREENSHOT"):  # the README's picture
                (ROOT / "docs").mkdir(exist_ok=True)
                shutil.copy(shot, ROOT / "docs" / "leaderboard.png")
            browser.close()
    finally:
        server.shutdown()
    assert blocked == [] and errors == []


def _column(view, key: str) -> list[float | None]:
    cells = view.locator(f"#table-main tbody td[data-key='{key}']").all_inner_texts()
    return [None if c == "-" else float(c) for c in cells]


def check_page(view):
    main = view.locator("#table-main tbody tr")
    assert main.count() == PAPER_MODELS + 2
    assert view.locator("#table-main tbody tr.paper").count() == PAPER_MODELS
    assert main.first.locator("td").count() == 2 + 21 + 13  # model (marked paper or submitted), type; Table 6; Table 8
    assert view.locator("#table-main thead tr.heads th").count() == 21 + 13
    other = view.locator("#section-other-1")
    assert other.locator("tbody tr").all_inner_texts()[0].startswith("old classic")
    assert f"protocol version {PROTOCOL_VERSION - 1} (this page ranks version {PROTOCOL_VERSION})" in other.inner_text()

    view.locator("#table-main th[data-key='it2afc_mean']").click()
    values = _column(view, "it2afc_mean")
    numbers = [v for v in values if v is not None]
    assert numbers == sorted(numbers, reverse=True) and values[: len(numbers)] == numbers  # "-" last
    view.locator("#table-main th[data-key='it2afc_mean']").click()
    numbers = [v for v in _column(view, "it2afc_mean") if v is not None]
    assert numbers == sorted(numbers) and numbers[0] != numbers[-1]
    view.locator("#table-main th[data-key='label']").click()
    labels = [t.split("\n")[0] for t in view.locator("#table-main tbody td.name").all_inner_texts()]
    assert labels == sorted(labels, key=str.lower) or labels == sorted(labels)

    view.locator("select#filter-source").select_option("submitted")
    assert main.count() == 2 and view.locator("#table-main tbody tr.paper").count() == 0
    view.locator("select#filter-source").select_option("all")
    view.locator("select#filter-kind").select_option("lmm")
    assert main.count() == 12 and view.locator("#table-main tbody tr[data-kind='encoder']").count() == 0
    view.locator("select#filter-kind").select_option("all")
    view.locator("input#filter-text").fill("clip")
    assert main.count() == 4  # CLIP ViT-B/32, -L/14, -H/14 and the tiny CLIP
    view.locator("input#filter-text").fill("")
    view.locator("select#filter-tasks").select_option("ood")
    assert main.first.locator("td").count() == 2 + 13
    view.locator("select#filter-tasks").select_option("iqa")
    assert view.locator("#table-main thead tr.heads th").all_inner_texts() == [
        "KADID-10K", "KONIQ-10K", "PIEAPP", "AGIQA-3K", "PIPAL", "average"]  # fmt: skip

    for figure in ("fig3_general", "fig3_specialized", "fig4_nafc"):
        assert view.locator(f"figure#{figure} svg").count() == 1
    assert view.locator("figure#fig3_general svg rect.cell").count() == 7 * 7
    assert view.locator("figure#fig4_nafc svg circle").count() == 1  # tiny CLIP at N = 4


def test_leaderboard_command_is_wired_into_unisim_bench():
    exe = Path(sys.executable).with_name("unisim-bench")
    done = subprocess.run([str(exe), "leaderboard", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("convert", "validate", "submit", "pull", "build", "publish"):
        assert command in done.stdout
