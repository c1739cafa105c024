"""``unisim-bench leaderboard``: submissions to a shared store of results, and the store's static page
(the commands are listed in ``USAGE``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runs import ResultsError
from .store import StoreError
from .submission import GROUPS, KINDS, SubmissionError

STORE_HELP = "a git repository (local path or git URL) or hf://datasets/ORG/NAME"
USAGE = """\
  convert R -o FILE               an lmms-eval run -> one submission file (nothing is sent)
  validate FILE [--store STORE]   check a submission on its own, and against a store
  submit R --store STORE          convert (or take a submission file), validate, add to the store
                                  (a git commit pushed; on hf://datasets/..., a pull request)
  pull --store STORE              bring the store's local cache up to date
  build --store STORE --out DIR   the store's static page, tables (CSV, LaTeX, Markdown), figures
  publish DIR --space ORG/NAME    upload a built page as a static Hugging Face Space
"""


def add_commands(sub) -> None:
    """Add ``leaderboard`` and its subcommands to the ``unisim-bench`` subcommands ``sub``."""
    group = sub.add_parser(
        "leaderboard",
        help="submit runs to a shared results store and build its page",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(dest="leaderboard_command", required=True, metavar="COMMAND")

    p = commands.add_parser("convert", help="turn an lmms-eval run into a submission file")
    _run_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.set_defaults(func=_guarded(cmd_convert))

    p = commands.add_parser("validate", help="check a submission file (against a store with --store)")
    p.add_argument("submission", type=Path, metavar="FILE")
    _store_options(p, required=False)
    p.set_defaults(func=_guarded(cmd_validate))

    p = commands.add_parser("submit", help="validate a run and add it to a store (a pull request on HF)")
    _run_options(p, submission_file=True)
    _store_options(p)
    p.set_defaults(func=_guarded(cmd_submit))

    p = commands.add_parser("pull", help="fetch a store into its local cache")
    _store_options(p)
    p.set_defaults(func=_guarded(cmd_pull))

    p = commands.add_parser("build", help="write the static page, tables and figures of a store")
    _store_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.set_defaults(func=_guarded(cmd_build))

    p = commands.add_parser("publish", help="upload a built page as a static Hugging Face Space")
    p.add_argument("site", type=Path, metavar="DIR")
    p.add_argument("--space", required=True, metavar="ORG/NAME")
    p.set_defaults(func=_guarded(cmd_publish))


def _run_options(p, submission_file: bool = False) -> None:
    what = " or a submission file written by convert" if submission_file else ""
    p.add_argument("results", type=Path, metavar="R", help=f"an lmms-eval --output_path folder or results file{what}")
    p.add_argument("--submitter", help="who submits (default: git config user.name)")
    p.add_argument("--model-name", help="the name shown on the leaderboard (default: from the run)")
    p.add_argument("--kind", choices=KINDS, help="encoder or lmm (default: from the run's answers)")
    p.add_argument("--group", choices=GROUPS, default="general", help="the paper's model group (default: general)")
    p.add_argument("--data-dir", type=Path, help="the data root the run read (default: where its results say)")


def _store_options(p, required: bool = True) -> None:
    p.add_argument("--store", required=required, help=STORE_HELP)
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="local copies of stores (default $UNISIM_LEADERBOARD_CACHE or ~/.cache/unisim_bench/leaderboards)",
    )


def _convert(args) -> dict:
    from .submission import convert_path, parse

    if args.results.suffix == ".json" and not args.results.name.endswith("_results.json"):
        return parse(args.results.read_text(encoding="utf-8"), where=str(args.results))
    return convert_path(
        args.results, submitter=args.submitter, model_name=args.model_name, kind=args.kind, group=args.group,
        data_dir=args.data_dir,
    )  # fmt: skip


def _open(args):
    from .store import open_store

    return open_store(args.store, args.cache_dir)


def cmd_convert(args) -> int:
    from .store import refusal
    from .submission import dumps, problems

    submission = _convert(args)
    args.output.write_text(dumps(submission), encoding="utf-8")
    print(f"wrote {args.output}: {submission['model']['name']} [{submission['id']}]")
    reasons = problems(submission)
    if reasons:
        print(f"warning: a store will refuse it; {refusal(reasons)}", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    from .store import refusal
    from .submission import conflicts, parse, problems

    submission = parse(args.submission.read_text(encoding="utf-8"), where=str(args.submission))
    reasons = problems(submission)
    if args.store:
        store = _open(args)
        store.pull()
        reasons += conflicts(submission, store.submissions(), store.proposed())
    if reasons:
        print(f"error: {args.submission} {refusal(reasons)}", file=sys.stderr)
        return 1
    print(f"{args.submission}: valid{' for ' + args.store if args.store else ''}")
    return 0


def cmd_submit(args) -> int:
    from .store import submit

    submission = _convert(args)
    print(f"{submission['model']['name']} [{submission['id']}]: {submit(_open(args), submission)}")
    return 0


def cmd_pull(args) -> int:
    store = _open(args)
    folder = store.pull()
    print(f"{args.store}: {len(store.submissions())} submissions in {folder}")
    return 0


def cmd_build(args) -> int:
    from .page import build

    store = _open(args)
    store.pull()
    written = build(store.submissions(), args.out, args.store)
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


def cmd_publish(args) -> int:
    from .page import publish

    print(f"published {args.site} to {publish(args.site, args.space)}")
    return 0


def _guarded(command):
    """``command`` with the leaderboard's errors as ``error: ...`` on stderr and exit status 1."""

    def guarded(args) -> int:
        try:
            return command(args)
        except (SubmissionError, StoreError, ResultsError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    return guarded
