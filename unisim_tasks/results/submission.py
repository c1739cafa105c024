"""Leaderboard submissions: one lmms-eval run of UniSim-Bench as one self-describing JSON file.

``convert`` turns a ``Run`` (``runs.read_runs``) into a submission with six parts:

- ``model``: its name, the lmms-eval ``--model``, the ``--model_args`` with secrets dropped (keys
  such as ``token`` / ``api_key``) and local paths reduced to ``<local>/<basename>``, its ``kind``
  (``encoder`` or ``lmm``) and its ``group`` (the paper's general / specialized / unisim);
- ``harness``: the versions of unisim-bench, lmms-eval, torch, transformers and open_clip that
  convert it (convert where the run ran), the device, dtype and batch size;
- ``protocol``: ``PROTOCOL_VERSION``, each task's version and generation kwargs, lmms-eval's
  ``--limit`` and ``--gen_kwargs``;
- ``data``: for each evaluation set, its prepared set's identity (builder, builder version, seed,
  parameters) and ``content_sha256``, a checksum of the samples themselves (``content_checksum``),
  plus ``version``, a checksum over the benchmark sets' checksums: runs on other data never share
  a ranking;
- ``scores``: each set's metrics with the samples scored (``n_samples``) out of those in the set
  (``n_original``) and the sha256 of its samples file;
- ``provenance``: the submitter, the date, the run's date and the sha256 of its results file.

``problems`` lists what makes a submission unrankable on its own (partial runs, another protocol,
an inconsistent file); ``conflicts`` what makes it clash with a store's submissions (a duplicate,
other data under the same data identity). ``parse`` reads a submission file and checks its form.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from ..data.raw import sha256_file
from ..data.store import data_root, eval_set_dir, read_manifest
from ..tasks.prompts import letter
from .paper import GROUPS as PAPER_GROUPS
from .protocol import BENCHMARK_SETS, NAFC_SETS, PROTOCOL_VERSION
from .runs import Run, read_runs

FORMAT = "unisim-bench-submission/1"
KINDS = ("encoder", "lmm")
GROUPS = tuple(PAPER_GROUPS)  # the paper's row sections: general, specialized, unisim
HARNESS_PACKAGES = {
    "unisim_bench": "unisim-bench",
    "lmms_eval": "lmms_eval",
    "torch": "torch",
    "transformers": "transformers",
    "open_clip": "open_clip_torch",
}
IDENTITY_KEYS = ("split", "builder", "builder_version", "seed", "params")  # a prepared set's inputs
_SECRET_KEY = re.compile(r"(^|_)(token|api_?key|secret|password|auth)$", re.IGNORECASE)
_LOCAL = re.compile(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\])")
_UNHASHED = ("meta",)  # record columns left out of a set's content checksum (provenance, not content)


class SubmissionError(ValueError):
    """A run that cannot become a submission, or a submission that cannot be ranked; says why."""


# -- the model --------------------------------------------------------------------------------------
def public_model_args(model_args: str) -> dict[str, str]:
    """lmms-eval's ``k=v,...`` model_args without secrets, local paths reduced to their basename."""
    public = {}
    for item in filter(None, (part.strip() for part in model_args.split(","))):
        key, _, value = (s.strip() for s in item.partition("="))
        if not _SECRET_KEY.search(key):
            public[key] = _public_value(value)
    return dict(sorted(public.items()))


def _public_value(value: str) -> str:
    if "://" in value:
        return re.sub(r"//[^/@]*@", "//", value)  # no user:password@ in a URL
    if _LOCAL.match(value) or (re.search(r"[/\\]", value) and Path(value).exists()):
        return f"<local>/{Path(value.rstrip('/')).name}"
    return value


def _is_scoring_model(run: Run) -> bool:
    """Encoders (and the classical measures) answer with a JSON ``{"answer": ..., "scores": ...}``;
    a generative model answers in text."""
    for result in run.datasets.values():
        if result.samples_file is None or result.eval_set.startswith("ir_"):
            continue
        with result.samples_file.open(encoding="utf-8") as f:
            response = json.loads(f.readline()).get("filtered_resps")
        response = response[0] if isinstance(response, list) and response else response
        try:
            return isinstance(response, str) and "answer" in json.loads(response)
        except (json.JSONDecodeError, TypeError):
            return False
    return False


def _model(run: Run, name: str | None, kind: str | None, group: str) -> dict:
    args = public_model_args(run.model_args)
    if name is None:
        name = run.name
        if name == run.model and args:
            name = f"{run.model}({','.join(f'{k}={v}' for k, v in args.items())})"
    return {
        "name": name,
        "lmms_eval_model": run.model,
        "model_args": args,
        "kind": kind or ("encoder" if _is_scoring_model(run) else "lmm"),
        "group": group,
    }


def _harness(run: Run, args: dict) -> dict:
    versions = {}
    for key, dist in HARNESS_PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return {
        **versions,
        "device": run.config.get("device") or args.get("device") or args.get("device_map"),
        "dtype": args.get("dtype") or args.get("torch_dtype"),
        "batch_size": run.config.get("batch_size"),
    }


# -- the data ---------------------------------------------------------------------------------------
def content_checksum(folder: Path) -> tuple[str, dict]:
    """The sha256 of a prepared set's records, part by part in the order of its ``dataset_dict.json``
    and row by row in stored order: every column but ``meta`` (uids, labels or IR ground truth,
    texts, attributes), images by their encoded bytes (not their file names). Returns it with what
    was seen: ``labels`` (the first part's, None for IR) and ``alternatives`` (images per sample)."""
    h = hashlib.sha256()
    seen = {"labels": [], "alternatives": set()}
    parts = json.loads((folder / "dataset_dict.json").read_text())["splits"]
    for part in parts:
        _feed(h, part)
        state = json.loads((folder / part / "state.json").read_text())
        for entry in state["_data_files"]:
            with pa.memory_map(str(folder / part / entry["filename"])) as source:
                for batch in pa.ipc.open_stream(source):
                    for row in batch.to_pylist():
                        for column in sorted(row):
                            if column not in _UNHASHED:
                                _feed(h, column)
                                _feed(h, row[column])
                        if part == parts[0]:
                            seen["labels"].append(row.get("label"))
                            seen["alternatives"].add(len(row.get("images") or []))
    return h.hexdigest(), seen


def _feed(h, value) -> None:
    """Hash ``value`` unambiguously: a type tag, a length where it varies, then the content."""
    if isinstance(value, dict) and set(value) == {"bytes", "path"}:  # an image: its bytes alone
        value = value["bytes"]
    if value is None:
        h.update(b"N")
    elif isinstance(value, (bool, int, float)):
        h.update(b"V" + repr(value).encode() + b";")
    elif isinstance(value, (str, bytes)):
        data = value.encode() if isinstance(value, str) else value
        h.update((b"S" if isinstance(value, str) else b"B") + len(data).to_bytes(8, "big") + data)
    elif isinstance(value, list):
        h.update(b"L" + len(value).to_bytes(8, "big"))
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        h.update(b"D" + len(value).to_bytes(8, "big"))
        for key in sorted(value):
            _feed(h, key)
            _feed(h, value[key])
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__}")


def _targets(samples_file: Path) -> dict[int, str]:
    with samples_file.open(encoding="utf-8") as f:
        return {s["doc_id"]: s.get("target") for s in map(json.loads, filter(str.strip, f))}


def _data_set(run: Run, eval_set: str, config: dict, data_dir) -> dict:
    folder = (
        eval_set_dir(data_root(data_dir), eval_set, "test", mini=run.mini)
        if data_dir is not None
        else Path(config.get("dataset_path", ""))
    )
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        raise SubmissionError(
            f"{eval_set}: no prepared set at {folder}, where the run read it; convert on the machine "
            f"that ran it, or pass --data-dir with that data root"
        )
    checksum, seen = content_checksum(folder)
    samples_file = run.datasets[eval_set].samples_file
    if samples_file is not None and not eval_set.startswith("ir_"):
        for doc_id, target in sorted(_targets(samples_file).items()):
            if doc_id >= len(seen["labels"]) or target != letter(seen["labels"][doc_id]):
                raise SubmissionError(
                    f"{eval_set}: the run's samples do not match the set prepared at {folder} (sample "
                    f"{doc_id}): it was prepared anew after the run; convert with the data the run read"
                )
    entry = {key: manifest.get(key) for key in IDENTITY_KEYS}
    entry.update(num_samples=manifest["num_samples"], content_sha256=checksum)
    if eval_set in NAFC_SETS:
        entry["num_alternatives"] = max(seen["alternatives"])
    return entry


def data_version(sets: dict) -> str:
    """The checksum the page ranks by: over the benchmark sets' checksums (over all sets of a
    submission that has none of them)."""
    names = [e for e in sets if e in BENCHMARK_SETS] or list(sets)
    return digest({e: sets[e]["content_sha256"] for e in sorted(names)})


# -- a whole submission -----------------------------------------------------------------------------
def digest(value) -> str:
    """The sha256 of ``value``'s canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def submission_id(submission: dict) -> str:
    """What makes two submissions the same: the model and its arguments, the protocol, the data."""
    model = submission["model"]
    return digest(
        {
            "model": [model["lmms_eval_model"], model["model_args"]],
            "protocol": submission["protocol"]["version"],
            "data": {e: s["content_sha256"] for e, s in submission["data"]["sets"].items()},
        }
    )[:16]


def store_path(submission: dict) -> str:
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", submission["model"]["name"].replace("/", "__")).strip("-.")
    return f"submissions/{model or 'model'}/{submission['id']}.json"


def git_user() -> str | None:
    try:
        done = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() or None


def convert(
    run: Run,
    *,
    submitter: str | None = None,
    model_name: str | None = None,
    kind: str | None = None,
    group: str = "general",
    data_dir=None,
) -> dict:
    """The submission of ``run``. ``kind`` (encoder / lmm) is inferred from the run's answers when
    not given; ``data_dir`` is the data root the run read, when not where its results say."""
    submitter = submitter or git_user()
    if not submitter:
        raise SubmissionError("no submitter: pass --submitter NAME or set git config user.name")
    results = json.loads(run.results_file.read_text(encoding="utf-8"))
    configs, counts = results.get("configs", {}), results["n-samples"]
    args = dict(item.partition("=")[::2] for item in run.model_args.split(",") if item.strip())
    sets, scores, tasks = {}, {}, {}
    for eval_set, result in run.datasets.items():
        config = configs.get(result.task, {})
        sets[eval_set] = _data_set(run, eval_set, config, data_dir)
        tasks[eval_set] = {
            "version": results.get("versions", {}).get(result.task),
            "generation_kwargs": config.get("generation_kwargs"),
        }
        scores[eval_set] = {
            "task": result.task,
            "metrics": {k: _finite(v) for k, v in sorted(result.metrics.items())},
            "n_samples": result.n_samples,
            "n_original": int(counts[result.task].get("original", result.n_samples)),
            "samples_sha256": sha256_file(result.samples_file) if result.samples_file else None,
        }
    submission = {
        "format": FORMAT,
        "model": _model(run, model_name, kind, group),
        "harness": _harness(run, args),
        "protocol": {
            "version": PROTOCOL_VERSION,
            "tasks": tasks,
            "limit": run.limit,
            "gen_kwargs_override": str(run.config.get("gen_kwargs") or ""),
        },
        "data": {"mini": run.mini, "version": data_version(sets), "sets": sets},
        "scores": scores,
        "provenance": {
            "submitter": submitter,
            "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_date": run.date,
            "results_file": run.results_file.name,
            "results_sha256": sha256_file(run.results_file),
        },
    }
    submission["id"] = submission_id(submission)
    return submission


def convert_path(path, **kwargs) -> dict:
    """``convert`` the one run that ``path`` (a results folder or file) holds."""
    runs = read_runs(path)
    if len(runs) != 1:
        listed = "; ".join(f"{r.results_file} ({'mini' if r.mini else 'real'} tasks)" for r in runs)
        raise SubmissionError(f"{path} holds {len(runs)} runs ({listed}); a submission is one run of one kind of data")
    return convert(runs[0], **kwargs)


def dumps(submission: dict) -> str:
    return json.dumps(submission, indent=1, sort_keys=True, allow_nan=False) + "\n"


# -- checking ---------------------------------------------------------------------------------------
_NUMBER = (int, float)
_FORM = {
    "format": str,
    "id": str,
    "model": {"name": str, "lmms_eval_model": str, "model_args": dict, "kind": str, "group": str},
    "harness": dict,
    "protocol": {"version": int, "tasks": dict, "limit": (*_NUMBER, type(None)), "gen_kwargs_override": str},
    "data": {"mini": bool, "version": str, "sets": dict},
    "scores": dict,
    "provenance": {"submitter": str, "submitted": str, "run_date": str, "results_sha256": str},
}
_SET_FORM = {"content_sha256": str, "num_samples": int, "builder": str, "builder_version": str, "seed": int}
_SCORE_FORM = {"task": str, "metrics": dict, "n_samples": int, "n_original": int, "samples_sha256": (str, type(None))}


def _check_form(value, form, where: str) -> None:
    if isinstance(form, dict):
        if not isinstance(value, dict):
            raise SubmissionError(f"{where}: expected an object, found {type(value).__name__}")
        for key, inner in form.items():
            if key not in value:
                raise SubmissionError(f"{where}: no {key!r}")
            _check_form(value[key], inner, f"{where}.{key}")
    else:
        forms = form if isinstance(form, tuple) else (form,)
        if (bool not in forms) if isinstance(value, bool) else not isinstance(value, forms):
            expected = " or ".join(f.__name__ for f in forms)
            raise SubmissionError(f"{where}: expected {expected}, found {value!r}")


def parse(text: str, where: str = "submission") -> dict:
    """A submission read from JSON text, its form checked; ``SubmissionError`` naming ``where`` and
    the first thing wrong otherwise."""
    try:
        submission = json.loads(text)
    except json.JSONDecodeError as e:
        raise SubmissionError(f"{where}: not JSON ({e})") from None
    if not isinstance(submission, dict) or submission.get("format") != FORMAT:
        found = submission.get("format") if isinstance(submission, dict) else type(submission).__name__
        raise SubmissionError(f"{where}: not a {FORMAT} file (format: {found!r})")
    _check_form(submission, _FORM, where)
    for eval_set, entry in submission["data"]["sets"].items():
        _check_form(entry, _SET_FORM, f"{where}.data.sets.{eval_set}")
    for eval_set, entry in submission["scores"].items():
        _check_form(entry, _SCORE_FORM, f"{where}.scores.{eval_set}")
        if "score" not in entry["metrics"]:
            raise SubmissionError(f"{where}.scores.{eval_set}: no score")
    if submission["data"]["sets"].keys() != submission["scores"].keys():
        raise SubmissionError(f"{where}: its data and scores name different evaluation sets")
    for key, allowed in (("kind", KINDS), ("group", GROUPS)):
        if submission["model"][key] not in allowed:
            raise SubmissionError(
                f"{where}.model.{key}: {submission['model'][key]!r} is not one of {', '.join(allowed)}"
            )
    if submission["id"] != submission_id(submission) or submission["data"]["version"] != data_version(
        submission["data"]["sets"]
    ):
        raise SubmissionError(f"{where}: its id or data version does not match its content (edited by hand?)")
    return submission


def problems(submission: dict) -> list[str]:
    """Why ``submission`` cannot be ranked whatever the store holds; empty if it can."""
    found = []
    protocol, scores = submission["protocol"], submission["scores"]
    if protocol["version"] != PROTOCOL_VERSION:
        found.append(
            f"made under protocol version {protocol['version']}; this unisim-bench ranks version "
            f"{PROTOCOL_VERSION} (evaluate again with the same unisim-bench as the store's submissions)"
        )
    if protocol["limit"] is not None:
        found.append(f"a partial run: lmms-eval ran with --limit {protocol['limit']}; evaluate without --limit")
    if protocol["gen_kwargs_override"]:
        found.append(
            f"lmms-eval ran with --gen_kwargs {protocol['gen_kwargs_override']}; the protocol's "
            "generation settings are the tasks' own"
        )
    nafc_only = bool(scores) and set(scores) <= set(NAFC_SETS)
    missing = [] if nafc_only else [e for e in BENCHMARK_SETS if e not in scores]
    if missing:
        prefix = "unisim_mini_" if submission["data"]["mini"] else "unisim_"
        found.append(
            f"a partial run: no results for {len(missing)} of the {len(BENCHMARK_SETS)} evaluation sets "
            f"({', '.join(prefix + e for e in missing)}); evaluate the whole benchmark (--tasks "
            f"{prefix}core,{prefix}ood)"
        )
    for eval_set, entry in scores.items():
        in_set = submission["data"]["sets"][eval_set]["num_samples"]
        if not entry["n_samples"] == entry["n_original"] == in_set:
            found.append(f"a partial run: {eval_set}: {entry['n_samples']} of its {in_set} samples evaluated")
        if entry["samples_sha256"] is None:
            found.append(f"{eval_set}: no samples file; evaluate with --log_samples")
    return found


def conflicts(submission: dict, existing: list[tuple[str, dict]], proposed: dict[str, str]) -> list[str]:
    """Why ``submission`` clashes with a store holding ``existing`` (path, submission) and the
    ``proposed`` submission ids (id -> where): a duplicate, or other data than the store's under
    the same prepared-set identity (the first submission of a data identity is its reference)."""
    found = []
    for path, other in existing:
        if submission_id(other) == submission["id"]:
            who = other["provenance"]
            found.append(
                f"a duplicate: the store has this model, model_args, protocol and data as {path} "
                f"({who['submitter']}, {who['submitted']})"
            )
    if submission["id"] in proposed:
        found.append(
            f"a duplicate: this model, model_args, protocol and data are proposed in {proposed[submission['id']]}"
        )
    oldest_first = sorted(existing, key=lambda item: item[1]["provenance"]["submitted"])
    for eval_set, entry in submission["data"]["sets"].items():
        for path, other in oldest_first:
            reference = other["data"]["sets"].get(eval_set)
            if reference is None or other["data"]["mini"] != submission["data"]["mini"]:
                continue
            if all(reference.get(k) == entry.get(k) for k in IDENTITY_KEYS):
                if reference["content_sha256"] != entry["content_sha256"]:
                    found.append(
                        f"{eval_set}: other data than the store's: prepared with the same builder "
                        f"{entry['builder']} {entry['builder_version']}, seed {entry['seed']} and parameters "
                        f"{entry['params']}, but its content sha256 {entry['content_sha256'][:12]} is not "
                        f"{reference['content_sha256'][:12]} of the store's reference {path}; the raw release "
                        "differs (check the raw files against the manifest's raw_files)"
                    )
                break
    return found
