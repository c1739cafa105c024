"""``unisim-bench report``: the paper's Tables 6 and 8 from lmms-eval result folders."""

from __future__ import annotations

import sys
from pathlib import Path

from .render import FORMATS
from .runs import ResultsError

TABLES = {"core": ("core",), "ood": ("ood",), "both": ("core", "ood")}


def add_commands(sub) -> None:
    """Add ``report`` to the ``unisim-bench`` subcommands ``sub``."""
    p = sub.add_parser(
        "report",
        help="the paper's Tables 6 / 8 from lmms-eval results",
        description="Tables in the layout of the paper's Table 6 (core 2AFC tasks) and Table 8 (OOD tasks) "
        "from lmms-eval --output_path folders: per-dataset scores, task means and averages recomputed "
        "from them; encoders on IQA / PAA in the better quality mode per task (App. C).",
    )
    p.add_argument("results", nargs="*", type=Path, metavar="R",
                   help="an lmms-eval --output_path folder (searched for *_results.json) or results file")  # fmt: skip
    p.add_argument("--paper", action="store_true", help="add the paper's rows (as printed)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--table", choices=list(TABLES), default="both", help="core (Table 6), ood (Table 8) or both")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .render import render
    from .report import tables
    from .runs import read_runs

    if not args.results and not args.paper:
        print("error: give a results folder R (lmms-eval --output_path) or --paper", file=sys.stderr)
        return 2
    try:
        out = render(tables(read_runs(args.results), TABLES[args.table], paper=args.paper), args.format)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0
