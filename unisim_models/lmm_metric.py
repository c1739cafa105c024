"""An HF LLaVA / LLaVA-OneVision model (e.g. a UniSim-LL-N trained here) as a metric.

Each sample is asked as lmms-eval asks it: the task's Table 7 prompt (``unisim_tasks.tasks``), one
user turn with the images where the prompt's ``<image>`` marks are, rendered with the in-order
chat template (``unisim_models.chat_template``) whatever template the folder carries, decoded
greedily, and the reply read by the package's answer parser (``choice`` None when it names no
option). The public methods are those of ``EncoderMetric``, less ``similarity``.
"""

from __future__ import annotations

import os

import torch
from tqdm.auto import tqdm

from unisim_models.chat_template import in_order_template
from unisim_models.encoders import resolve_dtype
from unisim_models.metric import _check_lengths, _images, _is_one_image, to_pil
from unisim_models.scoring import Judgement
from unisim_tasks.data.schema import PAA_ATTRIBUTES
from unisim_tasks.tasks.parsing import parse_answer
from unisim_tasks.tasks.prompts import num_options, visuals
from unisim_tasks.tasks.utils import doc_to_messages

# alternatives a Table 7 prompt shows, where the template fixes their number (IT-2AFC lists N)
_ALTERNATIVES = {"img2afc": 2, "text2afc": 2, "iqa": 2, "paa": 2, "ooo": 3}


def _model_class(model_type: str):
    import transformers

    classes = {"llava": "LlavaForConditionalGeneration", "llava_onevision": "LlavaOnevisionForConditionalGeneration"}
    if model_type not in classes:
        raise ValueError(f"an LMM metric needs an HF LLaVA or LLaVA-OneVision model, not {model_type!r}")
    return getattr(transformers, classes[model_type])


class LMMMetric:
    def __init__(
        self, folder: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32", max_new_tokens: int = 64
    ) -> None:
        from transformers import AutoConfig, AutoProcessor

        self.name = str(folder)
        self.device = torch.device(device)
        config = AutoConfig.from_pretrained(folder)
        self.processor = AutoProcessor.from_pretrained(folder)
        model = _model_class(config.model_type).from_pretrained(folder, dtype=resolve_dtype(dtype))
        self.model = model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.template = in_order_template()

    def __repr__(self) -> str:
        return f"LMMMetric({self.name!r}, device={self.device})"

    # -- tasks: the EncoderMetric signatures -------------------------------------------------------
    def img2afc(self, reference, a, b):
        if not _is_one_image(reference):
            _check_lengths("img2afc", reference, a, b)
            return self._ask_all([_doc("img2afc", ref_image=r, images=[x, y]) for r, x, y in zip(reference, a, b)])
        return self._ask(_doc("img2afc", ref_image=reference, images=[a, b]))

    def it2afc(self, caption, images):
        if not isinstance(caption, str):
            _check_lengths("it2afc", caption, images)
            return self._ask_all([_doc("it2afc", ref_text=c, images=_images(i)) for c, i in zip(caption, images)])
        return self._ask(_doc("it2afc", ref_text=caption, images=_images(images)))

    def text2afc(self, image, captions):
        if not _is_one_image(image):
            _check_lengths("text2afc", image, captions)
            return self._ask_all([_doc("text2afc", ref_image=i, texts=list(c)) for i, c in zip(image, captions)])
        return self._ask(_doc("text2afc", ref_image=image, texts=list(captions)))

    def quality(self, images, mode: str | None = None):
        """Which of two images has the better quality (``mode`` is an encoder's; it must be None)."""
        return self.attribute(images, "quality", mode)

    def attribute(self, images, attribute: str, mode: str | None = None):
        if mode is not None:
            raise ValueError("mode= chooses an encoder's IQA approach; an LMM is asked the Table 7 question")
        if attribute == "quality":
            return self._ask(_doc("iqa", images=_images(images)))
        if attribute not in PAA_ATTRIBUTES:
            raise ValueError(f"unknown attribute {attribute!r}; one of quality, {', '.join(PAA_ATTRIBUTES)}")
        return self._ask(_doc("paa", images=_images(images), attribute=attribute))

    def odd_one_out(self, images):
        batch = images.ndim == 5 if isinstance(images, torch.Tensor) else not _is_one_image(images[0])
        if batch:
            return self._ask_all([_doc("ooo", images=_images(t)) for t in images])
        return self._ask(_doc("ooo", images=_images(images)))

    def similarity(self, x, y):
        raise NotImplementedError("an LMM metric answers choices; similarity needs an encoder metric")

    # -- asking ----------------------------------------------------------------------------------
    def prompt(self, doc: dict) -> str:
        """The rendered chat prompt of a sample, images as the processor's image token."""
        return self.processor.apply_chat_template(
            doc_to_messages(doc), chat_template=self.template, add_generation_prompt=True, tokenize=False
        )

    def _ask_all(self, docs: list[dict]) -> list[Judgement]:
        return [self._ask(d) for d in tqdm(docs, desc=f"{self.name} samples", disable=len(docs) < 3)]

    @torch.no_grad()
    def _ask(self, doc: dict) -> Judgement:
        inputs = self.processor(text=self.prompt(doc), images=visuals(doc), return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        reply = self.processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        return Judgement(parse_answer(reply, doc["task"], num_options(doc)), response=reply)


def _doc(task: str, *, images=(), ref_image=None, ref_text=None, texts=None, attribute=None) -> dict:
    """A sample in the canonical layout the task templates read."""
    n = len(texts) if task == "text2afc" else len(images)
    expected = _ALTERNATIVES.get(task)
    if (expected is not None and n != expected) or n < 2:
        raise ValueError(f"{task}: the Table 7 prompt shows {expected or 'at least 2'} alternatives, got {n}")
    return {
        "uid": f"metric-{task}", "task": task, "dataset": None, "label": 0, "meta": "{}",
        "ref_image": None if ref_image is None else to_pil(ref_image), "ref_text": ref_text,
        "images": [to_pil(im) for im in images], "texts": list(texts or []),
        "attribute": attribute,
    }  # fmt: skip
