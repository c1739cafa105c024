"""``unisim_classic``: weight-free perceptual baselines as an lmms-eval model (no weights, no network).

- Img-2AFC: the alternative closest to the reference by ``metric`` (``ssim``, the default, ``l2``
  or ``psnr``; see ``classic.py``).
- PAA: the image with the larger statistic of the attribute (mean luminance, Hasler-Süsstrunk
  colourfulness, RMS contrast, variance of the Laplacian).
- OOO: the image outside the pair with the most similar colour histograms; IR: the gallery ranked by
  colour-histogram similarity to the query.
- IQA, IT-2AFC, Text-2AFC: not applicable, answered ``{"answer": null}`` and scored NaN (the paper's
  "-"). No library ships a no-reference quality measure with its parameters for offline use
  (scikit-image has none; piq's and pyiqa's BRISQUE / NIQE fetch their parameters on first use),
  and a measure of pixels has nothing to say about a caption.

The answer is JSON with the raw values (``--log_samples`` keeps them). Every distinct image's
statistics and histogram are computed once per run, batch by batch; each distinct (reference,
alternative) pair of Img-2AFC once.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from unisim_models import classic, scoring
from unisim_models.gathered import GatheredModel, Plan, batch_size_for, check_model_args
from unisim_tasks.tasks.prompts import letter

DEFAULT_METRIC = "ssim"
NOT_APPLICABLE = {
    "iqa": "no weight-free no-reference quality measure is available offline",
    "it2afc": "a pixel measure does not read captions",
    "text2afc": "a pixel measure does not read captions",
}
_FEATURE_TASKS = ("paa", "ooo", "ir")  # tasks answered from per-image statistics
_DECODED_CACHE = 256  # decoded images kept for Img-2AFC pairs (references recur across samples)


class UniSimClassic(GatheredModel):
    name = "unisim_classic"

    def __init__(self, metric: str = DEFAULT_METRIC, batch_size: int | str | None = None, device: str | None = None, **kwargs) -> None:
        check_model_args(self.name, kwargs, "metric (l2, psnr, ssim), batch_size")
        if metric not in classic.FULL_REFERENCE:
            raise ValueError(f"{self.name}: metric must be one of {sorted(classic.FULL_REFERENCE)}, got {metric!r}")
        super().__init__(device="cpu")  # NumPy / scikit-image measures: the CPU whatever --device says
        self.metric = metric
        self.batch_size = batch_size_for(batch_size, self.device, self.name)
        self._pairs: dict[tuple[str, str], float] = {}
        self._decoded = lru_cache(maxsize=_DECODED_CACHE)(lambda key: classic.to_array(self._load_image(key)))
        self._log_placement(f"images per batch, Img-2AFC by {metric}")

    # -- measuring -------------------------------------------------------------------------------
    def _images_to_measure(self, plan: Plan) -> list[str]:
        return super()._images_to_measure(plan) if plan.doc["task"] in _FEATURE_TASKS else []

    def _measure_images(self, keys: list[str]) -> None:
        quiet = {"disable": True} if self.rank != 0 or not keys else {}
        for start in tqdm(range(0, len(keys), self.batch_size), desc=f"{self.name} images", **quiet):
            for key in keys[start : start + self.batch_size]:
                pixels = classic.to_array(self._load_image(key))
                stats = {name: measure(pixels) for name, measure in classic.ATTRIBUTES.items()}
                self._features[key] = {**stats, "histogram": classic.colour_histogram(pixels)}

    def _measure_requests(self, plans: list[Plan]) -> None:
        """Img-2AFC: each distinct (reference, alternative) pair."""
        pending = {
            (plan.images["ref_image"][0], alternative): None
            for plan in plans
            if plan.doc["task"] == "img2afc"
            for alternative in plan.images["images"]
        }
        pending = sorted(k for k in pending if k not in self._pairs)  # by reference: decoded once
        quiet = {"disable": True} if self.rank != 0 or not pending else {}
        for reference, alternative in tqdm(pending, desc=f"{self.name} {self.metric} pairs", **quiet):
            value = classic.full_reference(self.metric, self._decoded(reference), [self._decoded(alternative)])[0]
            self._pairs[reference, alternative] = value

    # -- answering -------------------------------------------------------------------------------
    def _answer(self, plan: Plan) -> str:
        doc, kind = plan.doc, plan.doc["task"]
        alternatives = plan.images["images"]
        if kind in NOT_APPLICABLE:
            return json.dumps({"answer": None, "reason": NOT_APPLICABLE[kind]})
        if kind == "img2afc":
            reference = plan.images["ref_image"][0]
            values = [self._pairs[reference, a] for a in alternatives]
            larger_is_closer = classic.FULL_REFERENCE[self.metric][1]
            choice = scoring.argmax(values if larger_is_closer else [-v for v in values])
            return json.dumps({"answer": letter(choice), "metric": self.metric, "scores": values})
        if kind == "paa":
            values = [self._features[k][doc["attribute"]] for k in alternatives]
            return json.dumps({"answer": letter(scoring.argmax(values)), "attribute": doc["attribute"], "scores": values})
        if kind == "ooo":
            histograms = [self._features[k]["histogram"] for k in alternatives]
            sims = np.stack([classic.histogram_similarity(h, np.stack(histograms)) for h in histograms])
            odd, pair_sims = scoring.odd_one_out_by(sims)
            return json.dumps({"answer": letter(odd), "pair_similarities": pair_sims})
        if kind == "ir":
            uids, keys = self._galleries[plan.gallery]
            query = self._features[plan.images["ref_image"][0]]["histogram"]
            gallery = np.stack([self._features[k]["histogram"] for k in keys])
            sims = classic.histogram_similarity(query, gallery)
            return json.dumps([uids[i] for i in scoring.ranking(sims)])
        raise ValueError(f"{self.name}: unknown task type {kind!r} in {doc['uid']}")
