"""lmms-eval hooks shared by every UniSim-Bench task (referenced from the YAML files as ``!function``).

lmms-eval loads this file by path, so it imports the package absolutely. ``dataset_<eval set>`` and
``mini_dataset_<eval set>`` attributes resolve (PEP 562) to the prepared folder of that evaluation
set, which the YAMLs pass to ``datasets.load_from_disk``; an unprepared set raises an error naming
the ``unisim-bench prepare`` command that fixes it, and the bundled mini sets are built on demand.
"""

from __future__ import annotations

import json
import math

from unisim_tasks.tasks import prompts
from unisim_tasks.tasks.parsing import parse_answer
from unisim_tasks.tasks.retrieval import mean_ap, parse_ranking, query_ap

# Task groups of the paper's two averages, in the order their YAMLs list them, with the number of
# datasets in each: lmms-eval hands a group's aggregation the leaf scores in that order.
CORE_GROUPS = (("img2afc", 3), ("it2afc", 5), ("text2afc", 3), ("iqa", 5))
OOD_GROUPS = (("paa", 5), ("ooo", 2), ("ir", 2))


def __getattr__(name: str) -> str:
    for prefix, mini in (("mini_dataset_", True), ("dataset_", False)):
        if name.startswith(prefix):
            from unisim_tasks.data.store import prepared_folder

            return str(prepared_folder(name[len(prefix) :], mini=mini))
    raise AttributeError(name)


def _kwargs(lmms_eval_specific_kwargs) -> dict:
    return lmms_eval_specific_kwargs or {}


def doc_to_visual(doc):
    return prompts.visuals(doc)


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = _kwargs(lmms_eval_specific_kwargs)
    body = prompts.render_prompt(doc, kwargs.get("prompt_dir"))
    return f"{kwargs.get('pre_prompt', '')}{body}{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    """One user turn with the images interleaved exactly where the prompt's ``<image>`` marks are."""
    text = doc_to_text(doc, lmms_eval_specific_kwargs)
    images = doc_to_visual(doc)
    pieces = text.split(prompts.IMAGE_TOKEN)
    if len(pieces) - 1 != len(images):
        raise ValueError(f"{doc['uid']}: the prompt has {len(pieces) - 1} <image> marks for {len(images)} images")
    content = []
    for i, piece in enumerate(pieces):
        if piece:
            content.append({"type": "text", "text": piece})
        if i < len(images):
            content.append({"type": "image", "url": images[i]})
    return [{"role": "user", "content": content}]


def doc_to_target(doc):
    return "" if doc["task"] == "ir" else prompts.letter(doc["label"])


def process_results(doc, results):
    response = results[0] if results else ""
    if doc["task"] == "ir":
        ranking = parse_ranking(response)
        if ranking is None:  # a generative model's text: retrieval does not apply to it
            return {"map_medium": math.nan, "map_hard": math.nan, "score": (math.nan, math.nan)}
        ap = query_ap(ranking, doc["easy"], doc["hard"], doc["junk"])
        return {**ap, "score": (ap["map_medium"], ap["map_hard"])}
    structured = _structured(response)
    if structured and structured["answer"] is None:  # the model's measure does not apply (the paper's "-")
        scores = {"acc": math.nan, "unparsed": math.nan, "score": math.nan}
        return {**scores, "acc_naive": math.nan, "acc_clipiqa": math.nan} if doc["task"] in ("iqa", "paa") else scores
    choice = _choice(structured["answer"] if structured else response, doc)
    correct = float(choice == doc["label"])
    scores = {"acc": correct, "unparsed": float(choice is None), "score": correct}
    if doc["task"] in ("iqa", "paa"):
        # an encoder may answer with both IQA approaches; a generative model has neither (NaN)
        choices = (structured or {}).get("choices", {})
        for mode, metric in (("naive", "acc_naive"), ("clip-iqa", "acc_clipiqa")):
            scores[metric] = float(_choice(choices[mode], doc) == doc["label"]) if mode in choices else math.nan
    return scores


def _choice(answer: str, doc) -> int | None:
    return parse_answer(answer, doc["task"], prompts.num_options(doc))


def _structured(response: str) -> dict | None:
    """A scoring model's JSON answer ({"answer": "B", "scores": ...}, or {"answer": null, ...} where
    its measure does not apply); None for free text."""
    if not response.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(response)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and "answer" in value and (value["answer"] is None or isinstance(value["answer"], str)):
        return value
    return None


def aggregate_ir_score(pairs):
    """The paper's IR number: the mean of the Medium and Hard mAPs."""
    return (mean_ap([m for m, _ in pairs]) + mean_ap([h for _, h in pairs])) / 2


def _mean_of_groups(scores, groups) -> float:
    if len(scores) != sum(n for _, n in groups):
        names = ", ".join(f"{g} ({n})" for g, n in groups)
        raise ValueError(f"expected the scores of {names} datasets in that order, got {len(scores)} values")
    means, start = [], 0
    for _, n in groups:
        means.append(sum(scores[start : start + n]) / n)
        start += n
    return sum(means) / len(means)


def core_average(scores, sizes=None, weight_by_size=False):
    """The paper's core average: the unweighted mean of the Img-2AFC, IT-2AFC, Text-2AFC, IQA scores."""
    return _mean_of_groups(scores, CORE_GROUPS)


def ood_average(scores, sizes=None, weight_by_size=False):
    """The paper's OOD average: the unweighted mean of the PAA, OOO and IR scores (NaN if IR is N/A)."""
    return _mean_of_groups(scores, OOD_GROUPS)
