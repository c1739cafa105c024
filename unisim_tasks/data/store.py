"""Writing and loading prepared evaluation sets under the data root.

Layout: ``$UNISIM_DATA_DIR/<eval set>/<split>/`` (the bundled mini benchmark under
``$UNISIM_DATA_DIR/mini/<eval set>/test/``), each an HF ``DatasetDict`` folder (``save_to_disk``
format) whose parts are ``samples``, or ``queries`` and ``gallery`` for IR, plus ``manifest.json``. A build is written to ``<split>.partial`` and renamed into
place only once complete, so an interrupted build never looks prepared.

Sets are written in a form that datasets 3.x and datasets >= 4 both load (see ``_portable``); a set
whose features the running ``datasets`` cannot parse (one written by an earlier unisim-bench under
datasets >= 4, read under 3.x) is rebuilt by ``prepare``, rebuilt on use if it is a mini set, and
otherwise an ``UnreadableSetError``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from filelock import FileLock
from tqdm.auto import tqdm

from .builder import BuildContext, Builder, Report, task_of
from .raw import CorruptImageError, RawDir, RawLayoutError, check_image, sha256_file
from .sampling import Sampler
from .schema import GALLERY_FEATURES, IR_QUERY_FEATURES, SAMPLE_FEATURES, ImageBytes, ImageRef

MANIFEST = "manifest.json"
MINI = "mini"
SAMPLES = "samples"  # the one part of a non-IR evaluation set
_WRITER_BATCH = 64  # records held in memory before they are flushed to disk
_QUOTED = 3  # bad rows and skipped items quoted in the error when no record could be built


class NotPreparedError(FileNotFoundError):
    pass


class UnreadableSetError(NotPreparedError):
    """A prepared set whose features the running ``datasets`` cannot parse."""


class AlreadyPreparedError(FileExistsError):
    pass


class DataDirNotWritableError(PermissionError):
    """The data root refuses a write; the message names it and how to choose another."""


@contextmanager
def writing_to(root: Path):
    """Turn a write refused inside ``root`` (permissions, read-only file system) into one clear error."""
    try:
        yield
    except OSError as e:
        refused = e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        if not refused or e.filename is None or not Path(e.filename).is_relative_to(root):
            raise
        raise DataDirNotWritableError(
            f"cannot write to the data directory {root} ({e.strerror}); "
            f"choose a writable one with --data-dir or UNISIM_DATA_DIR"
        ) from None


def make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    if created:
        folder.mkdir(parents=True, exist_ok=True)
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove folders ``make_dirs`` created, deepest first, as far as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("UNISIM_DATA_DIR", "~/.cache/unisim_bench")).expanduser()


def eval_set_dir(root: Path, eval_set: str, split: str, mini: bool = False) -> Path:
    return (root / MINI if mini else root) / eval_set / split


def _features(eval_set: str, part: str) -> datasets.Features:
    if task_of(eval_set) == "ir":
        return IR_QUERY_FEATURES if part == "queries" else GALLERY_FEATURES
    return SAMPLE_FEATURES


def _resolve_image(raw: RawDir | None, value: Any) -> Any:
    if isinstance(value, ImageRef):
        return {"bytes": raw.read_image(value.path), "path": Path(value.path).name}
    if isinstance(value, ImageBytes):
        check_image(value.data)
        return {"bytes": value.data, "path": value.name}
    return value


def _resolve(raw: RawDir | None, record: dict) -> dict:
    out = dict(record)
    for key in ("ref_image", "image"):
        if key in out:
            out[key] = _resolve_image(raw, out[key])
    if "images" in out:
        out["images"] = [_resolve_image(raw, v) for v in out["images"]]
    return out


def _write_part(records, features, ctx: BuildContext, limit: int | None, dest: Path, desc: str) -> int:
    """Stream ``records`` to ``dest`` (``save_to_disk`` format); returns how many were kept."""
    scratch = Path(tempfile.mkdtemp(prefix="unisim-", dir=dest.parent))
    kept = 0
    seen: set[str] = set()
    try:
        with ArrowWriter(features=features, path=str(scratch / "data.arrow"), writer_batch_size=_WRITER_BATCH) as w:
            with tqdm(total=limit, desc=desc, unit="sample", leave=False) as bar:
                for record in records:
                    if limit is not None and kept >= limit:
                        break
                    if record["uid"] in seen:
                        raise ValueError(f"{desc}: the builder yielded uid {record['uid']!r} twice")
                    seen.add(record["uid"])
                    try:
                        resolved = _resolve(ctx.raw, record)
                    except (CorruptImageError, RawLayoutError) as e:
                        ctx.report.skip(record["uid"], str(e).splitlines()[0])
                        continue
                    w.write(features.encode_example(resolved))
                    kept += 1
                    bar.update(1)
            w.finalize()
        if not kept:  # nothing to save (_build names the empty part); datasets 3.x cannot save an empty image set
            return 0
        ds = datasets.Dataset.from_file(str(scratch / "data.arrow"))
        was_disabled = datasets.utils.are_progress_bars_disabled()
        datasets.utils.disable_progress_bars()  # our own bar already showed this part's progress
        try:
            ds.save_to_disk(str(dest))
        finally:
            if not was_disabled:
                datasets.utils.enable_progress_bars()
        del ds
        _record_portable_features(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return kept


def _portable(features: Any) -> Any:
    """Serialised features in the form datasets 3.x writes, which datasets >= 4 reads back unchanged:
    datasets 4 renamed ``Sequence`` to ``List``, a type 3.x does not know, but still reads ``Sequence``
    as ``List``. (No list of ours holds a dict, which 3.x's ``Sequence`` would make a dict of lists.)"""
    if isinstance(features, list):
        return [_portable(f) for f in features]
    if not isinstance(features, dict):
        return features
    out = {k: _portable(v) for k, v in features.items()}
    if out.get("_type") == "List":
        out["_type"] = "Sequence"
    return out


def _record_portable_features(part: Path) -> None:
    """Rewrite the features a saved part records, in dataset_info.json and each arrow file's schema
    (both are parsed on loading), in the ``_portable`` form; nothing to do under datasets 3.x."""
    info_file = part / "dataset_info.json"
    info = json.loads(info_file.read_text())
    if _portable(info["features"]) == info["features"]:
        return
    info_file.write_text(json.dumps({**info, "features": _portable(info["features"])}, indent=2))
    for shard in sorted(part.glob("*.arrow")):
        rewritten = shard.with_name(shard.name + ".tmp")
        with pa.memory_map(str(shard)) as source:
            reader = pa.ipc.open_stream(source)
            hf = json.loads(reader.schema.metadata[b"huggingface"])
            hf["info"]["features"] = _portable(hf["info"]["features"])
            schema = reader.schema.with_metadata({**reader.schema.metadata, b"huggingface": json.dumps(hf)})
            with pa.OSFile(str(rewritten), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        rewritten.replace(shard)


def _unknown_features(folder: Path) -> str | None:
    """Why the running ``datasets`` cannot parse the features a prepared set records; None if it can."""
    for info_file in sorted(folder.glob("*/dataset_info.json")):
        try:
            datasets.Features.from_dict(json.loads(info_file.read_text())["features"])
        except ValueError as e:
            return f"{info_file.parent.name}: {e}"
    return None


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _identity(builder: Builder, eval_set: str, split: str, seed: int, params: dict) -> dict:
    return {
        "eval_set": eval_set,
        "task": task_of(eval_set),
        "split": split,
        "builder": builder.name,
        "builder_version": builder.version,
        "seed": seed,
        "params": params,
    }


def _same_inputs(manifest: dict, identity: dict, raw_root: Path | None) -> bool:
    if any(manifest.get(k) != v for k, v in identity.items()):
        return False
    if raw_root is None:
        return True
    return all(_sha256(raw_root / rel) == digest for rel, digest in manifest.get("raw_files", {}).items())


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def build_eval_set(
    builder: Builder,
    eval_set: str,
    split: str,
    *,
    raw_root: Path | None,
    root: Path,
    seed: int = 0,
    num_samples: int | None = None,
    params: dict | None = None,
    overwrite: bool = False,
) -> tuple[str, dict]:
    """Build one evaluation set; returns ``("built" | "unchanged", manifest)``.

    A set prepared from the same inputs, in a form the running ``datasets`` reads, is found without a
    lock or any write, so prepared data works from a read-only data dir; one it cannot read is
    rebuilt. Concurrent builds of the same set (several ranks of one lmms-eval run) wait for each
    other, so the later ones find it prepared. A failed build removes its lock file and the folders
    it created.
    """
    count = builder.outputs[split][eval_set] if num_samples is None else num_samples
    if count <= 0:
        raise ValueError("num_samples must be positive")
    # the set's own parameters: its defaults, overridden by those given (recorded in the manifest)
    params = {k: (params or {}).get(k, default) for k, default in builder.params_accepted.get(eval_set, {}).items()}
    identity = _identity(builder, eval_set, split, seed, {"num_samples": count, **params})
    mini = builder.raw_folder is None
    dest = eval_set_dir(root, eval_set, split, mini=mini)
    manifest = _prepared_as(dest, identity, raw_root, overwrite)
    if manifest is not None:
        return "unchanged", manifest

    lock_file = root / ".locks" / f"{MINI + '-' if mini else ''}{eval_set}-{split}.lock"
    lock = FileLock(str(lock_file))
    created: list[Path] = []
    try:
        with writing_to(root):
            created = make_dirs(lock_file.parent)
            lock.acquire()
        manifest = _prepared_as(dest, identity, raw_root, overwrite)  # a concurrent build may have written it
        if manifest is not None:
            return "unchanged", manifest
        return "built", _build(builder, eval_set, split, seed, count, params, identity, raw_root, dest)
    except BaseException:
        if lock.is_locked:
            # unlinked while held: filelock sees the link count drop, so a waiting build retries on a new file
            lock_file.unlink(missing_ok=True)
        remove_empty(created)
        raise
    finally:
        if lock.is_locked:
            lock.release()


def _prepared_as(dest: Path, identity: dict, raw_root: Path | None, overwrite: bool) -> dict | None:
    """The manifest of ``dest`` if it was prepared from these inputs; None if it is to be (re)built."""
    existing = read_manifest(dest)
    if existing is None:
        return None
    if _same_inputs(existing, identity, raw_root):
        return existing if _unknown_features(dest) is None else None
    if not overwrite:
        raise AlreadyPreparedError(
            f"{dest} was prepared from different inputs (seed, parameters, builder version or raw "
            f"files differ); pass --overwrite to replace it"
        )
    return None


def _build(builder, eval_set, split, seed, count, params, identity, raw_root, dest) -> dict:
    raw = RawDir(raw_root, builder.name, builder.layout) if raw_root is not None else None
    ctx = BuildContext(
        raw=raw,
        split=split,
        seed=seed,
        num_samples=count,
        params=params,
        sampler=Sampler(seed, builder.name, split, eval_set),
        report=Report(),
    )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    created = make_dirs(dest.parent)
    try:
        partial.mkdir()
        streams = builder.parts(ctx, eval_set)
        counts = {}
        for part, records in streams.items():
            limit = None if part == "gallery" else count
            desc = eval_set if len(streams) == 1 else f"{eval_set}/{part}"
            counts[part] = _write_part(records, _features(eval_set, part), ctx, limit, partial / part, desc)
        (partial / "dataset_dict.json").write_text(json.dumps({"splits": list(streams)}))
        empty = [part for part, n in counts.items() if n == 0]
        if empty:
            raise ValueError(_nothing_built(builder, eval_set, empty[0], raw_root, raw, ctx.report))
        kept = counts.get("samples", counts.get("queries"))
        manifest = {
            **identity,
            "dataset": builder.name,
            "default_num_samples": builder.outputs[split][eval_set],
            "num_samples": kept,
            "part_counts": counts,
            "shortfall": max(0, count - kept),
            "skipped_count": len(ctx.report.skipped),
            "skipped": ctx.report.skipped,
            "malformed_count": len(ctx.report.malformed),
            "malformed": ctx.report.malformed,
            "raw_files": dict(sorted(raw.files.items())) if raw else {},
            "datasets_version": datasets.__version__,
            "pyarrow_version": pa.__version__,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if dest.exists():
            shutil.rmtree(dest)
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        remove_empty(created)
        raise
    return manifest


def _nothing_built(builder: Builder, eval_set: str, part: str, raw_root, raw: RawDir | None, report: Report) -> str:
    """Why no record came out: the columns a label file lacks, the first malformed rows and skipped items."""
    lines = [f"{builder.name}: no {eval_set} {part} record could be built from {raw_root}"]
    lacking = {rel: columns for rel, columns in (raw.csv_columns if raw else {}).items() if columns[1]}
    for rel, (header, missing) in lacking.items():
        expected, found = ", ".join(sorted(missing)), ", ".join(header)
        lines.append(f"  {rel}: expected column {expected} not found; its columns: {found}")
    for what, entries, quote in (
        ("malformed rows", report.malformed, "{file}:{row}: {reason}"),
        ("skipped", report.skipped, "{item}: {reason}"),
    ):
        if entries:
            lines.append(f"  {len(entries)} {what}" + (f", the first {_QUOTED}:" if len(entries) > _QUOTED else ":"))
            lines += ["    " + quote.format(**e) for e in entries[:_QUOTED]]
    if lacking or report.malformed:
        lines.append(f"Expected raw layout under {raw_root}:\n{builder.layout}")
    return "\n".join(lines)


def prepare_command(builder: Builder, split: str) -> str:
    if builder.raw_folder is None:
        return f"unisim-bench prepare --dataset {builder.name}"
    return f"unisim-bench prepare --dataset {builder.name} --split {split} --raw-dir DIR"


def prepared_folder(
    eval_set: str, split: str = "test", data_dir: str | os.PathLike | None = None, mini: bool = False
) -> Path:
    """The folder of a prepared evaluation set. The bundled mini sets are built here when missing or
    unreadable by the running ``datasets``; any other such set is an error that names the command
    preparing it."""
    from .builder import builder_for_eval_set, get_builder

    root = data_root(data_dir)
    folder = eval_set_dir(root, eval_set, split, mini=mini)
    manifest = read_manifest(folder)
    unknown = None if manifest is None else _unknown_features(folder)
    if manifest is not None and unknown is None:
        return folder
    builder = get_builder(MINI) if mini else builder_for_eval_set(eval_set)[0]
    if mini and eval_set in builder.outputs.get(split, {}):
        # an unreadable one is rebuilt as it was prepared, also if by an earlier builder version
        again = {} if manifest is None else {
            "seed": manifest["seed"], "num_samples": manifest["params"]["num_samples"],
            "params": manifest["params"], "overwrite": True,
        }  # fmt: skip
        build_eval_set(builder, eval_set, split, raw_root=None, root=root, **again)
        return folder
    if unknown is not None:
        version = manifest.get("datasets_version")
        writer = f"datasets {version}" if version else "an unrecorded datasets version"
        raise UnreadableSetError(
            f"UniSim-Bench evaluation set {eval_set!r} ({split}) under {root} was written by {writer}, "
            f"which this datasets {datasets.__version__} cannot read ({unknown}). Prepare it "
            f"again with this datasets: {prepare_command(builder, split)} --overwrite; or use another "
            f"UNISIM_DATA_DIR for this environment."
        )
    raise NotPreparedError(
        f"UniSim-Bench evaluation set {eval_set!r} ({split}) is not prepared under {root}. "
        f"Run: {prepare_command(builder, split)}"
    )


def load_eval_set(
    eval_set: str, split: str = "test", data_dir: str | os.PathLike | None = None, mini: bool = False
) -> datasets.Dataset | datasets.DatasetDict:
    """Load a prepared evaluation set (the mini ones are built on first use); if a real set is not
    prepared, the error says which command prepares it."""
    folder = prepared_folder(eval_set, split, data_dir, mini)
    parts = datasets.load_from_disk(str(folder))
    return parts[SAMPLES] if SAMPLES in parts else parts


def prepared(root: Path) -> list[tuple[Path, dict]]:
    """Every prepared evaluation set under ``root`` with its manifest."""
    return [(m.parent, json.loads(m.read_text())) for m in sorted(root.glob("**/" + MANIFEST))]
