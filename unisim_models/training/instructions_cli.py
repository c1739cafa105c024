"""``unisim-bench instructions``: the UniSim-LL-N instruction data (``instructions.build``) from the
command line. Light to import: the builder loads only when the command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Write the perceptual instruction data UniSim-LL-N is fine-tuned on (paper Sec. 3.3, App. B.2): the
prepared training sets of the core tasks (the CLIP trainer's, Table 5) as LLaVA conversations with
varied instructions and answers (every answer checked with the package's parser), mixed with the
multi-image part of M4-Instruct. OUT gets llnext_data.json (LLaVA-NeXT's --data_path; run train.py
with --image_folder OUT), images/ (each image once, named by its SHA-256), llnext_meta.jsonl (where
each record came from) and manifest.json (counts, templates, skips, input checksums).

Paper settings (the defaults): Img-2AFC 120K, IT-2AFC 300K, Text-2AFC 300K, IQA 120K, plus 500K
M4-Instruct samples (--m4-samples 0: the v1 models' perceptual-only data). Images byte-identical
to a prepared UniSim-Bench test image are dropped (--keep-eval-duplicates keeps them); prepare the
test sets under the same --data-dir first so they can be checked.
"""


def add_commands(sub) -> None:
    """Add ``instructions`` to ``unisim-bench``'s subcommands."""
    from .m4_instruct import NOT_MULTI_IMAGE

    p = sub.add_parser(
        "instructions", help="write the UniSim-LL-N instruction data (LLaVA format, mixed with M4-Instruct)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="the folder to write (built in a temporary sibling, "
                   "then renamed into place)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, help="prepared data root: the training sets, and the test sets "
                   "checked against (default $UNISIM_DATA_DIR or ~/.cache/unisim_bench)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    p.add_argument("--count", action="append", default=[], metavar="TASK=N", help="samples of a task (repeatable; "
                   "default img2afc=120000, it2afc=300000, text2afc=300000, iqa=120000; 0 leaves a task out); a task "
                   "with fewer training samples repeats them pass by pass, each repeat phrased anew")  # fmt: skip
    p.add_argument("--datasets", action="append", default=[], metavar="TASK=D1,D2", help="the training sets of a "
                   "task, replacing its default (the CLIP trainer's Table 5 lists)")  # fmt: skip
    p.add_argument("--m4-dir", type=Path, help="local copy of the HF dataset lmms-lab/M4-Instruct-Data: "
                   "m4_instruct_annotations.json next to its unzipped image folders")  # fmt: skip
    p.add_argument("--m4-samples", type=int, default=500_000, metavar="N", help="M4-Instruct samples mixed in "
                   "(default 500000; 0: none, the paper's v1 data)")  # fmt: skip
    p.add_argument("--m4-exclude-subsets", metavar="S1,S2", help="M4 subsets (image folders) left out as not "
                   f"multi-image (default {','.join(NOT_MULTI_IMAGE)}; 'none' keeps all)")  # fmt: skip
    p.add_argument("--keep-eval-duplicates", action="store_true", help="keep training samples / M4 rows with an "
                   "image byte-identical to a UniSim-Bench test image (default: report and drop them)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace a different build already in --out")
    p.set_defaults(func=cmd_instructions)


def cmd_instructions(args) -> int:
    from .config import TrainingError
    from .instructions import InstructionDataError, build
    from .m4_instruct import M4Error

    exclude = None
    if args.m4_exclude_subsets is not None:
        value = args.m4_exclude_subsets.strip()
        exclude = [] if value.lower() == "none" else [s.strip() for s in value.split(",") if s.strip()]
    try:
        status, manifest = build(
            args.out, data_dir=args.data_dir, seed=args.seed, counts=args.count, datasets=args.datasets,
            m4_dir=args.m4_dir, m4_samples=args.m4_samples, m4_exclude_subsets=exclude,
            keep_eval_duplicates=args.keep_eval_duplicates, overwrite=args.overwrite,
        )  # fmt: skip
    except (InstructionDataError, TrainingError, M4Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(status, args.out, manifest))
    return 0


def summary(status: str, out, manifest: dict) -> str:
    from .config import CORE_TASKS

    unisim, m4 = manifest["sources"]["unisim"], manifest["sources"]["m4"]
    lines = [f"{status}: {out} ({manifest['num_records']} records, {manifest['num_images']} images)"]
    for task in CORE_TASKS:
        if task not in unisim["tasks"]:
            continue
        s = unisim["tasks"][task]
        extra = f", {s['repeated']} repeats" if s["repeated"] else ""
        dup = s["eval_duplicates"]
        extra += f", {dup['found']} with a test image ({dup['dropped']} dropped)" if dup["found"] else ""
        lines.append(f"  {task:<9} {s['records']:>8} of {s['available']} training samples{extra}")
    if m4.get("requested"):
        dup = m4["eval_duplicates"]
        skipped = ", ".join(f"{r} {n}" for r, n in m4["skipped"].items()) or "none"
        lines.append(f"  m4        {m4['records']:>8} (asked {m4['requested']}; skipped: {skipped}; "
                     f"with a test image: {dup['found']})")  # fmt: skip
    check = manifest["eval_check"]
    if check["warning"]:
        lines.append(f"  warning: {check['warning']}")
    else:
        lines.append(f"  checked against {len(check['sets'])} prepared test sets ({check['distinct_images']} images)")
    return "\n".join(lines)
