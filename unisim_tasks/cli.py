"""The ``unisim-bench`` command: ``prepare`` datasets from their raw releases, ``info`` on what is
prepared, ``presets`` and ``score`` for the metrics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data.builder import SPLITS, all_builders, get_builder
from .data.raw import RawLayoutError, locate, safe_extract
from .data.store import (
    AlreadyPreparedError,
    DataDirNotWritableError,
    build_eval_set,
    data_root,
    make_dirs,
    prepared,
    remove_empty,
    writing_to,
)

HF_RAW_REPO = "saraghznfri/unisim_data"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
PARAM_OPTIONS = {"num_alternatives": "--num-alternatives"}  # builder parameter -> its `prepare` option


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    return next(path.name[: -len(s)] for s in ARCHIVE_SUFFIXES if path.name.endswith(s))


def _download(builder, root: Path) -> Path:
    archive = builder.archive
    if archive is None:
        raise SystemExit(
            f"{builder.name} is not in {HF_RAW_REPO}; get it from its publisher and pass --raw-dir "
            f"(expected layout:\n{builder.layout})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(HF_RAW_REPO, archive, repo_type="dataset", cache_dir=str(root / "downloads"))
        )
    except Exception as e:  # offline, no access, ...: the hub's own message says which
        raise SystemExit(f"could not download {archive} from the HF dataset {HF_RAW_REPO}: {e}") from e


def _raw_root(builder, raw_dir: Path | None, root: Path, download: bool) -> Path | None:
    if builder.raw_folder is None:
        return None
    if download:
        raw_dir = _download(builder, root)
    if raw_dir is None:
        raise SystemExit(f"--raw-dir is required for {builder.name} (or --download)")
    if _is_archive(raw_dir):
        raw_dir = _extract(raw_dir, root)
    if not raw_dir.is_dir():
        raise RawLayoutError(f"{builder.name}: raw folder {raw_dir} does not exist\nExpected layout:\n{builder.layout}")
    return locate(raw_dir, builder.raw_folders)


def _extract(archive: Path, root: Path) -> Path:
    created = []
    try:
        with writing_to(root):
            created = make_dirs(root / "raw")
            return safe_extract(archive, root / "raw" / _archive_stem(archive))
    except BaseException:
        remove_empty(created)
        raise


def _takes(builder, split: str) -> set[str]:
    """The parameters some evaluation set of ``builder``'s ``split`` accepts."""
    return {k for e in builder.outputs.get(split, {}) for k in builder.params_accepted.get(e, {})}


def _check_params(builder, split: str, given: dict, builders: dict) -> None:
    """Refuse an option that no evaluation set of ``builder``'s ``split`` takes."""
    for key in sorted(given.keys() - _takes(builder, split)):
        takers = [f"{n} ({s})" for n, b in sorted(builders.items()) for s in b.outputs if key in _takes(b, s)]
        raise SystemExit(f"{builder.name} ({split}) takes no {PARAM_OPTIONS[key]}; it is for: {', '.join(takers)}")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {n}")
        return n

    return parse


_BUILD_ERRORS = (RawLayoutError, AlreadyPreparedError, ValueError)  # one dataset's failure; others still build


def cmd_prepare(args) -> int:
    root = data_root(args.data_dir)
    builders = all_builders()
    given = {k: getattr(args, k) for k in PARAM_OPTIONS if getattr(args, k) is not None}
    if args.dataset == "all":
        return _prepare_all(args, root, given)
    builder = get_builder(args.dataset)
    _check_params(builder, args.split, given, builders)
    if args.split not in builder.outputs:
        splits = ", ".join(builder.outputs)
        raise SystemExit(f"{builder.name} has no {args.split} split in UniSim-Bench; it has: {splits}")
    try:
        _prepare(builder, _raw_root(builder, args.raw_dir, root, args.download), root, args, given)
    except _BUILD_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _prepare_all(args, root: Path, given: dict) -> int:
    """Every dataset whose raw folder is under --raw-dir (or, with --download, that can be
    downloaded); the others are listed in one line. Fails if none is there or one fails to build."""
    builders = [b for b in all_builders().values() if b.raw_folder is not None and args.split in b.outputs]
    raw_dir = args.raw_dir
    if args.download:
        present = [b for b in builders if b.archive]
        where = f"in the HF dataset {HF_RAW_REPO}"
    else:
        if raw_dir is None:
            raise SystemExit("--raw-dir is required for --dataset all (or --download)")
        if _is_archive(raw_dir):
            try:
                raw_dir = _extract(raw_dir, root)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
        present = [b for b in builders if any((raw_dir / f).is_dir() for f in b.raw_folders)]
        where = f"in {args.raw_dir}"
    absent = [b for b in builders if b not in present]
    if not present:
        folders = ", ".join(dict.fromkeys(f"{f}/" for b in builders for f in b.raw_folders))
        print(f"error: no dataset's raw folder {where}; expected one or more of: {folders}", file=sys.stderr)
        return 1
    failed = 0
    for builder in present:
        try:
            _prepare(builder, _raw_root(builder, raw_dir, root, args.download), root, args, given)
        except _BUILD_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    if absent:
        listed = ", ".join(f"{b.name} ({' or '.join(f + '/' for f in b.raw_folders)})" for b in absent)
        print(f"not {where}, so not prepared: {listed}")
    return 1 if failed else 0


def _prepare(builder, raw_root: Path | None, root: Path, args, given: dict) -> None:
    for eval_set in builder.outputs[args.split]:
        status, manifest = build_eval_set(
            builder,
            eval_set,
            args.split,
            raw_root=raw_root,
            root=root,
            seed=args.seed,
            num_samples=args.num_samples,
            params=given,
            overwrite=args.overwrite,
        )
        note = f", {manifest['skipped_count']} skipped" if manifest["skipped_count"] else ""
        note += f", {manifest['malformed_count']} malformed rows" if manifest["malformed_count"] else ""
        print(f"{eval_set}/{args.split}: {status}, {manifest['num_samples']} samples{note}")


def cmd_info(args) -> int:
    root = data_root(args.data_dir)
    rows = prepared(root) if root.is_dir() else []
    if not rows:
        print(f"no prepared datasets under {root}; run `unisim-bench prepare --dataset mini` to start")
        return 0
    print(f"{'evaluation set':<32} {'split':<6} {'samples':>8} {'skipped':>8}  folder")
    for folder, m in rows:
        name = ("mini/" if folder.parent.parent.name == "mini" else "") + m["eval_set"]
        print(f"{name:<32} {m['split']:<6} {m['num_samples']:>8} {m['skipped_count']:>8}  {folder}")
    return 0


def cmd_chat_template(args) -> int:
    from unisim_models.chat_template import main_chat_template

    try:
        print(main_chat_template(str(args.model_dir)))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unisim-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build evaluation/training sets from a raw release")
    p.add_argument("--dataset", required=True, help="a dataset name, 'mini' (bundled synthetic benchmark) or 'all'")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--raw-dir", type=Path, help="the raw release (folder or tarball) in its publisher's layout")
    p.add_argument("--data-dir", type=Path, help="data root (default $UNISIM_DATA_DIR or ~/.cache/unisim_bench)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-samples", type=_int_at_least(1), help="samples per evaluation set (default: the paper's count)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a set prepared from different inputs")
    p.add_argument(
        "--num-alternatives",
        type=_int_at_least(2),
        metavar="N",
        help="images per sample of the N-alternative sets (hpdv2: it2afc_hpdv2_nafc; default 4)",
    )
    p.add_argument("--download", action="store_true", help=f"fetch the raw archive from the HF dataset {HF_RAW_REPO}")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("info", help="list prepared datasets and their sample counts")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "chat-template", help="make a saved llava-hf model folder render each image where the prompt's <image> mark is"
    )
    p.add_argument("model_dir", type=Path)
    p.set_defaults(func=cmd_chat_template)

    # the commands over unisim_models' API: metrics, the UniSim-LL-N instruction data
    from unisim_models.metric_cli import add_commands as add_metric_commands
    from unisim_models.training.instructions_cli import add_commands as add_instruction_commands

    add_metric_commands(sub)
    add_instruction_commands(sub)

    from .results.leaderboard_cli import add_commands as add_leaderboard_commands
    from .results.report_cli import add_commands as add_report_commands

    add_report_commands(sub)
    add_leaderboard_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    except DataDirNotWritableError as e:  # the same for every dataset: reported once
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
