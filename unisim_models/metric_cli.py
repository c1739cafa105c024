"""``unisim-bench presets`` and ``unisim-bench score``: the metric API from the command line."""

from __future__ import annotations

import argparse
import json
import sys

# task -> (what the positional items are, how many: exact count or minimum)
SCORE_TASKS = {
    "img2afc": ("REF A B: the reference image and two alternatives", 3),
    "it2afc": ("CAPTION IMAGE IMAGE...: a caption and two or more images", -3),
    "text2afc": ("IMAGE CAPTION CAPTION...: an image and two or more captions", -3),
    "quality": ("IMAGE...: images to rank by quality", -1),
    "attribute": ("IMAGE...: images to rank by --attribute", -1),
    "odd_one_out": ("A B C: three images", 3),
    "similarity": ("X Y: two items, each an image file or a text", 2),
}


def add_commands(sub) -> None:
    p = sub.add_parser("presets", help="list the named encoders (the paper's and the UniSim ones)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_presets)

    tasks = "\n".join(f"  {t:<12} {what}" for t, (what, _) in SCORE_TASKS.items())
    p = sub.add_parser(
        "score", help="score images / texts with a UniSim metric", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Decide one sample with a metric and print the choice and the scores.\n\ntasks:\n{tasks}",
    )  # fmt: skip
    p.add_argument("--metric", required=True, help="a preset (unisim-bench presets) or a model folder")
    p.add_argument("--task", required=True, choices=list(SCORE_TASKS))
    p.add_argument("items", nargs="+", help="the sample's images (paths) and texts, as the task lists them")
    p.add_argument("--lora", help="the UniSim LoRA checkpoint a unisim_* preset needs")
    p.add_argument("--attribute", help="for --task attribute: brightness, colorfulness, contrast or sharpness")
    p.add_argument("--mode", choices=("naive", "clip-iqa"), help="quality / attribute mode (default: the metric's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_score)


def cmd_presets(args) -> int:
    from unisim_models.presets import list_presets

    rows = [
        {"name": p.name, "paper_name": p.paper_name, "hf_model": p.hf_model, "lora_url": p.lora_url,
         "checkpoint": str(p.default_checkpoint()) if p.needs_checkpoint else None,
         "checkpoint_found": p.default_checkpoint().exists() if p.needs_checkpoint else None}
        for p in list_presets()
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset':<20} {'paper':<24} {'model':<40} checkpoint")
    for r in rows:
        if r["lora_url"] is None:
            ckpt = "-"
        elif r["checkpoint_found"]:
            ckpt = f"LoRA: {r['checkpoint']}"
        else:
            ckpt = f"LoRA: pass --lora / lora=, or save {r['lora_url']} as {r['checkpoint']}"
        print(f"{r['name']:<20} {r['paper_name']:<24} {r['hf_model']:<40} {ckpt}")
    return 0


def _check_count(task: str, items: list[str]) -> None:
    what, n = SCORE_TASKS[task]
    if (n > 0 and len(items) != n) or (n < 0 and len(items) < -n):
        raise SystemExit(f"unisim-bench score --task {task}: expected {what}; got {len(items)} items")


def _call(metric, args):
    items, task = args.items, args.task
    if task == "img2afc":
        return metric.img2afc(*items)
    if task == "it2afc":
        return metric.it2afc(items[0], items[1:])
    if task == "text2afc":
        return metric.text2afc(items[0], items[1:])
    if task == "quality":
        return metric.quality(items, mode=args.mode)
    if task == "attribute":
        if not args.attribute:
            raise SystemExit("unisim-bench score --task attribute needs --attribute NAME")
        return metric.attribute(items, args.attribute, mode=args.mode)
    if task == "odd_one_out":
        return metric.odd_one_out(items)
    return metric.similarity(*items)


def _alternatives(task: str, items: list[str]) -> list[str]:
    return items[1:] if task in ("img2afc", "it2afc", "text2afc") else items


def cmd_score(args) -> int:
    from unisim_models.encoders import WeightsNotFoundError
    from unisim_models.metric import create_metric
    from unisim_tasks.tasks.prompts import letter

    _check_count(args.task, args.items)
    if args.task != "attribute" and args.attribute:
        raise SystemExit("--attribute is for --task attribute")
    try:
        metric = create_metric(args.metric, device=args.device, lora=args.lora, dtype=args.dtype)
        result = _call(metric, args)
    except (FileNotFoundError, ValueError, TypeError, NotImplementedError, WeightsNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.task == "similarity":
        out = {"metric": args.metric, "task": args.task, "similarity": result}
        print(json.dumps(out) if args.json else f"similarity: {result:.6f}")
        return 0
    alternatives = _alternatives(args.task, args.items)
    chosen = None if result.choice is None else alternatives[result.choice]
    out = {
        "metric": args.metric, "task": args.task, "choice": result.choice,
        "answer": None if result.choice is None else letter(result.choice), "chosen": chosen,
        "scores": result.scores, "choices": result.choices, "response": result.response,
    }  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"choice: {out['answer']} ({chosen})" if chosen is not None else "choice: none (the reply named no option)")
    for name, values in result.scores.items():
        print(f"{name}: " + " ".join(f"{v:.6f}" for v in values))
    if result.response is not None:
        print(f"response: {result.response}")
    return 0
