"""Encoder backends (open_clip, HF CLIP / SigLIP, UniSim LoRA) on tiny random models, offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests import tiny_clip as tc
from unisim_models.encoders import Encoder, HFEncoder, OpenClipEncoder, WeightsNotFoundError, load_encoder
from unisim_models.lora import LoraCheckpointError

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft vs transformers 5

TEXTS = ["a hot photo", "dog", "a very long caption that goes on and on well past sixteen tokens of context"]


@pytest.fixture(scope="module")
def tmp_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_clip")
    config, weights, name = tc.make_open_clip_checkpoint(root / "open_clip")
    hf_clip = tc.make_hf_clip(root, lora=True)
    return {
        "root": root, "oc_config": config, "oc_weights": weights, "oc_name": name, "hf_clip": hf_clip,
        "hf_siglip": tc.make_hf_siglip(root), "lora": hf_clip / "unisim_lora.pt",
    }  # fmt: skip


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _normalize(x):
    return F.normalize(x.float(), dim=-1)


def _pooled(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


# -- open_clip ----------------------------------------------------------------------------------
def test_open_clip_matches_direct_computation(tmp_models):
    import open_clip

    enc = load_encoder(model_config=str(tmp_models["oc_config"]), pretrained=str(tmp_models["oc_weights"]))
    assert isinstance(enc, OpenClipEncoder) and isinstance(enc, Encoder)
    assert enc.name == f"open_clip:{tmp_models['oc_name']}/{tmp_models['oc_weights']}"
    images = tc.images(3)
    got_images, got_texts = enc.encode_images(images), enc.encode_texts(TEXTS)

    model, _, preprocess = open_clip.create_model_and_transforms(
        tmp_models["oc_name"], pretrained=str(tmp_models["oc_weights"])
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(tmp_models["oc_name"])
    with torch.no_grad():
        want_images = _normalize(model.encode_image(torch.stack([preprocess(im) for im in images])))
        want_texts = _normalize(model.encode_text(tokenizer(TEXTS)))
    for got, want in ((got_images, want_images), (got_texts, want_texts)):
        assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (len(want), 16)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got.norm(dim=-1), torch.ones(len(want)))
    assert enc.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))
    assert (enc.image_forwards, enc.text_forwards) == (3, 3)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_open_clip_checkpoint_formats(tmp_models, tmp_path, fmt):
    config, weights, name = tc.make_open_clip_checkpoint(tmp_path, fmt=fmt)
    enc = load_encoder(model=name, model_config=str(config), pretrained=str(weights))
    ref = load_encoder(model=name, model_config=str(tmp_models["oc_config"]), pretrained=str(tmp_models["oc_weights"]))
    images = tc.images(2)
    torch.testing.assert_close(enc.encode_images(images), ref.encode_images(images))


def test_open_clip_config_errors(tmp_models, tmp_path):
    config = str(tmp_models["oc_config"])
    with pytest.raises(ValueError, match="registers the architecture 'unisim-tiny-test-ViT'"):
        load_encoder(model="ViT-B-32", model_config=config, pretrained=str(tmp_models["oc_weights"]))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_encoder(model_config=str(tmp_path / "nope.json"), pretrained=str(tmp_models["oc_weights"]))
    bad = tmp_path / "not-a-model.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not an open_clip model config"):
        load_encoder(model_config=str(bad), pretrained=str(tmp_models["oc_weights"]))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_encoder(model_config=config, pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="needs pretrained="):
        load_encoder(model_config=config)


def test_open_clip_wrong_checkpoint_is_clear(tmp_models, tmp_path):
    torch.save({"visual.nothing": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="does not fit open_clip model"):
        load_encoder(model_config=str(tmp_models["oc_config"]), pretrained=str(tmp_path / "wrong.pt"))


# -- HF CLIP / SigLIP ---------------------------------------------------------------------------
def _direct_hf(folder, images, texts, siglip=False):
    from transformers import AutoProcessor, CLIPModel, SiglipModel

    model = (SiglipModel if siglip else CLIPModel).from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder, backend="pil")
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        image_features = _pooled(model.get_image_features(pixel_values=pixels))
        if siglip:
            ids = processor(text=texts, padding="max_length", truncation=True, max_length=16, return_tensors="pt")
            text_features = _pooled(model.get_text_features(input_ids=ids["input_ids"]))
        else:  # one text at a time: no padding at all
            text_features = torch.cat(
                [
                    _pooled(model.get_text_features(**processor(text=[t], truncation=True, return_tensors="pt")))
                    for t in texts
                ]
            )
        if siglip:  # the model's own forward agrees (its embeddings come normalised)
            out = model(input_ids=ids["input_ids"], pixel_values=pixels)
        else:
            out = model(
                **processor(text=texts, padding=True, truncation=True, return_tensors="pt"), pixel_values=pixels
            )
    torch.testing.assert_close(_normalize(image_features), out.image_embeds, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(_normalize(text_features), out.text_embeds, atol=1e-6, rtol=1e-5)
    return _normalize(image_features), _normalize(text_features), model


def test_hf_clip_matches_direct_computation(tmp_models):
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    assert isinstance(enc, HFEncoder) and enc.name == f"hf:{tmp_models['hf_clip']}"
    images = tc.images(3)
    got_images, got_texts = enc.encode_images(images), enc.encode_texts(TEXTS)  # texts batched: padded
    want_images, want_texts, model = _direct_hf(tmp_models["hf_clip"], images, TEXTS)
    torch.testing.assert_close(got_images, want_images, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_texts, want_texts, atol=1e-6, rtol=1e-5)
    assert got_images.shape == (3, 16) and got_images.dtype == torch.float32
    assert enc.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))
    assert (enc.image_forwards, enc.text_forwards) == (3, 3)


def test_hf_siglip_matches_direct_computation(tmp_models):
    enc = load_encoder(hf_model=str(tmp_models["hf_siglip"]))
    assert enc.model_type == "siglip"
    images = tc.images(2)
    got_images, got_texts = enc.encode_images(images), enc.encode_texts(["a photo of a cat", "dog"])
    want_images, want_texts, model = _direct_hf(
        tmp_models["hf_siglip"], images, ["a photo of a cat", "dog"], siglip=True
    )
    torch.testing.assert_close(got_images, want_images, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_texts, want_texts, atol=1e-6, rtol=1e-5)
    # max_length padding: a text's embedding does not depend on its batch
    torch.testing.assert_close(enc.encode_texts(["dog"]), got_texts[1:], atol=1e-6, rtol=1e-5)
    assert enc.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))


def test_counters_count_items_and_empty_lists(tmp_models):
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    enc.encode_images(tc.images(3))
    enc.encode_images(tc.images(2, seed=1))
    enc.encode_texts(["a"])
    assert enc.encode_images([]).shape == (0, 16) and enc.encode_texts([]).shape == (0, 16)
    assert (enc.image_forwards, enc.text_forwards) == (5, 1)
    with pytest.raises(TypeError):
        enc.encode_texts("a single string")


def test_non_rgb_images_are_converted(tmp_models):
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    rgb = tc.images(1)[0]
    torch.testing.assert_close(enc.encode_images([rgb.convert("RGBA")]), enc.encode_images([rgb]))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_outputs_float32(tmp_models, dtype):
    ref = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]), dtype=dtype)
    assert next(enc.model.parameters()).dtype == getattr(torch, dtype)
    images = tc.images(2)
    got = enc.encode_images(images)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert F.cosine_similarity(got, ref.encode_images(images)).min() > 0.98
    oc = load_encoder(model_config=str(tmp_models["oc_config"]), pretrained=str(tmp_models["oc_weights"]), dtype=dtype)
    assert oc.encode_texts(["a"]).dtype == torch.float32


# -- UniSim LoRA --------------------------------------------------------------------------------
def _authors_reference(hf_folder, images, seed=1):
    """What the authors' loader computes: UniSim module + strict load + encode_image, unmerged."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor, CLIPModel

    clip = CLIPModel.from_pretrained(hf_folder).eval()
    peft_vision = get_peft_model(clip.vision_model, LoraConfig(**tc.UNISIM_LORA_CONFIG))
    layout = tc._UniSimLayout(clip, peft_vision).eval()
    layout.load_state_dict(tc.unisim_state_dict(hf_folder, seed=seed), strict=True)
    pixels = AutoProcessor.from_pretrained(hf_folder, backend="pil")(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return _normalize(layout.visual_projection(layout.vision_model(pixel_values=pixels)["pooler_output"]))


@pytest.mark.parametrize(
    "module_prefix,wrap,suffix",
    [(True, True, ".pt"), (False, True, ".pt"), (False, False, ".bin"), (True, False, ".safetensors")],
)
def test_unisim_lora_changes_images_not_texts(tmp_models, tmp_path, module_prefix, wrap, suffix):
    ckpt = tc.make_unisim_lora_checkpoint(
        tmp_models["hf_clip"], tmp_path / f"unisim{suffix}", module_prefix=module_prefix, wrap=wrap
    )
    base = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(ckpt))
    assert enc.name == f"hf:{tmp_models['hf_clip']}+lora:{ckpt}"
    images = tc.images(3)
    got = enc.encode_images(images)
    assert (got - base.encode_images(images)).abs().max() > 1e-2
    torch.testing.assert_close(enc.encode_texts(TEXTS), base.encode_texts(TEXTS))
    torch.testing.assert_close(got, _authors_reference(tmp_models["hf_clip"], images), atol=1e-5, rtol=1e-4)
    # merged: no peft wrappers left in the vision tower
    assert not any("lora" in name for name, _ in enc.model.named_parameters())


def test_make_hf_clip_lora_fixture_checkpoint_loads(tmp_models):
    raw = torch.load(tmp_models["lora"], weights_only=True)
    keys = list(raw["state_dict"])
    assert "module.vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.default.weight" in keys
    assert "module.text_projection.weight" in keys and set(raw) == {"epoch", "name", "state_dict", "optimizer"}
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_models["lora"]))
    assert enc.encode_images(tc.images(1)).shape == (1, 16)


def test_peft_adapter_folder(tmp_models, tmp_path):
    folder = tc.make_peft_adapter_folder(tmp_models["hf_clip"], tmp_path / "adapter")
    assert (folder / "adapter_config.json").is_file()
    base = load_encoder(hf_model=str(tmp_models["hf_clip"]))
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(folder))
    images = tc.images(2)
    assert (enc.encode_images(images) - base.encode_images(images)).abs().max() > 1e-2
    torch.testing.assert_close(enc.encode_texts(TEXTS), base.encode_texts(TEXTS))


def test_peft_adapter_variants(tmp_models, tmp_path):
    """Adapter made on the whole CLIPModel (vision keys only), and its weights file passed alone."""
    from safetensors.torch import load_file, save_file

    folder = tc.make_peft_adapter_folder(tmp_models["hf_clip"], tmp_path / "adapter")
    ref = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(folder)).encode_images(tc.images(2))
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "adapter_config.json").write_text((folder / "adapter_config.json").read_text())
    saved = load_file(str(folder / "adapter_model.safetensors"))
    assert all(k.startswith("base_model.model.encoder.") for k in saved)
    save_file({k.replace("base_model.model.", "base_model.model.vision_model.", 1): v for k, v in saved.items()},
              str(whole / "adapter_model.safetensors"))  # fmt: skip
    for lora in (whole, folder / "adapter_model.safetensors"):
        got = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(lora)).encode_images(tc.images(2))
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    text_too = dict(
        saved, **{"base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(16, 32)}
    )
    save_file({k.replace("base_model.model.encoder.", "base_model.model.vision_model.encoder.", 1): v for k, v in text_too.items()},
              str(whole / "adapter_model.safetensors"))  # fmt: skip
    with pytest.raises(ValueError, match="outside the vision tower"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(whole))


def test_old_peft_naming(tmp_models, tmp_path):
    """peft < 0.7 saved a LoRA-wrapped layer's own weights without ``base_layer``."""
    state = tc.unisim_state_dict(tmp_models["hf_clip"])
    old = {f"module.{k.replace('.base_layer.', '.')}": v for k, v in state.items()}
    assert len(old) == len(state)
    torch.save({"epoch": 1, "state_dict": old}, tmp_path / "old_peft.pt")
    got = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "old_peft.pt"))
    torch.testing.assert_close(
        got.encode_images(tc.images(2)), _authors_reference(tmp_models["hf_clip"], tc.images(2)), atol=1e-5, rtol=1e-4
    )


def test_lora_only_state_dict(tmp_models, tmp_path):
    state = tc.unisim_state_dict(tmp_models["hf_clip"])
    lora_only = {f"module.{k}": v for k, v in state.items() if ".lora_" in k}
    torch.save(lora_only, tmp_path / "lora_only.pt")
    full = load_encoder(
        hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_models["root"] / "tiny-hf-clip" / "unisim_lora.pt")
    )
    enc = load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "lora_only.pt"))
    images = tc.images(2)
    # the fixture checkpoint and this one share seed 1 -> the same LoRA weights
    torch.testing.assert_close(enc.encode_images(images), full.encode_images(images), atol=1e-5, rtol=1e-4)


def test_lora_wrong_keys_are_clear_errors(tmp_models, tmp_path):
    state = tc.unisim_state_dict(tmp_models["hf_clip"])
    renamed = dict(state)
    key = "vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.default.weight"
    renamed["vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_X.default.weight"] = renamed.pop(key)
    torch.save({"state_dict": {f"module.{k}": v for k, v in renamed.items()}}, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"1 missing key\(s\): .*q_proj\.lora_A\.default\.weight") as info:
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "renamed.pt"))
    assert isinstance(info.value, LoraCheckpointError)
    assert "1 unexpected key(s): vision_model.base_model.model.encoder.layers.0.self_attn.q_proj.lora_X" in str(
        info.value
    )

    extra = dict(state, **{"vision_model.base_model.model.something_else.weight": torch.zeros(2)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="unexpected key.*something_else"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "extra.pt"))

    partial = {k: v for k, v in state.items() if not k.startswith("text_model.")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing key\(s\): text_model\."):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "partial.pt"))

    no_lora = {
        k.replace("vision_model.base_model.model.", "vision_model."): v for k, v in state.items() if "lora_" not in k
    }
    torch.save(no_lora, tmp_path / "plain_clip.pt")
    with pytest.raises(ValueError, match="no LoRA weights"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "plain_clip.pt"))


def test_lora_on_a_different_base_is_a_shape_error(tmp_models, tmp_path):
    from transformers import CLIPConfig, CLIPModel

    other = tmp_path / "wide-clip"
    config = CLIPConfig.from_pretrained(tmp_models["hf_clip"])
    config.vision_config.hidden_size, config.vision_config.intermediate_size = 48, 96
    CLIPModel(config).save_pretrained(other)
    ckpt = tc.make_unisim_lora_checkpoint(other, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"(?s)shape mismatch.*Is hf_model the checkpoint's base model\?"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(ckpt))


def test_lora_argument_errors(tmp_models, tmp_path):
    with pytest.raises(ValueError, match="lora= applies to the HF backend only"):
        load_encoder(
            model_config=str(tmp_models["oc_config"]),
            pretrained=str(tmp_models["oc_weights"]),
            lora=str(tmp_models["lora"]),
        )
    with pytest.raises(FileNotFoundError, match="missing_lora.pt"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "missing_lora.pt"))
    with pytest.raises(ValueError, match="HF CLIPModel"):
        load_encoder(hf_model=str(tmp_models["hf_siglip"]), lora=str(tmp_models["lora"]))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(tmp_path / "empty_dir"))


# -- argument errors ----------------------------------------------------------------------------
def test_bad_arguments(tmp_models, tmp_path):
    with pytest.raises(ValueError, match=r"pass model=<open_clip name>.*or hf_model="):
        load_encoder()
    with pytest.raises(ValueError, match="not both"):
        load_encoder(model="ViT-B-32", pretrained="laion2b_s34b_b79k", hf_model="openai/clip-vit-large-patch14-336")
    with pytest.raises(ValueError, match=r"unknown open_clip model 'ViT-Nope-1'.*open_clip.list_models\(\)"):
        load_encoder(model="ViT-Nope-1", pretrained="x")
    with pytest.raises(ValueError, match="unknown pretrained tag 'no_such_tag'.*laion2b_s34b_b79k"):
        load_encoder(model="ViT-B-32", pretrained="no_such_tag")
    with pytest.raises(FileNotFoundError, match="ckpt.safetensors"):
        load_encoder(model="ViT-B-32", pretrained=str(tmp_path / "ckpt.safetensors"))
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        load_encoder(hf_model=str(tmp_path / "no_such_folder"))
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder(hf_model=str(tmp_path / "not_a_model"))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tmp_models["hf_clip"] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no_weights"):
        load_encoder(hf_model=str(no_weights))
    with pytest.raises(ValueError, match="open_clip args"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), pretrained="laion2b_s34b_b79k")
    with pytest.raises(ValueError, match="unknown dtype"):
        load_encoder(hf_model=str(tmp_models["hf_clip"]), dtype="int8")
    with pytest.raises(FileNotFoundError, match="local-dir folder not found"):
        load_encoder(model=f"local-dir:{tmp_path / 'nothing'}")


# -- offline, nothing cached --------------------------------------------------------------------
@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf_home" / "hub"


def test_offline_missing_hf_model(empty_cache, no_network):
    with pytest.raises(WeightsNotFoundError) as info:
        load_encoder(hf_model="unisim-test/does-not-exist")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "'unisim-test/does-not-exist' is not in the hub cache" in message and str(empty_cache) in message
    assert "hf download unisim-test/does-not-exist" in message and "huggingface-cli download" in message
    assert "hf_model=/path/to/folder" in message


def test_offline_missing_open_clip_tag(empty_cache, no_network):
    with pytest.raises(WeightsNotFoundError) as info:
        load_encoder(model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    message = str(info.value)
    assert "model=ViT-B-32,pretrained=laion2b_s34b_b79k" in message and str(empty_cache) in message
    assert "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    assert "pretrained=/path/to/checkpoint" in message


def test_offline_missing_open_clip_hub_model(empty_cache, no_network):
    with pytest.raises(WeightsNotFoundError, match="hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K"):
        load_encoder(model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")


def test_offline_errors_in_a_fresh_process(tmp_path):
    """Environment set before huggingface_hub is imported, as in a real run; bounded time."""
    script = textwrap.dedent(
        """
        import socket
        def refuse(*a, **k):
            raise SystemExit("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from unisim_models.encoders import load_encoder, WeightsNotFoundError
        for kwargs in ({"hf_model": "unisim-test/does-not-exist"}, {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}):
            try:
                load_encoder(**kwargs)
            except WeightsNotFoundError as e:
                print("ERR", str(e).splitlines()[0])
            else:
                raise SystemExit(f"loaded {kwargs} with an empty cache")
        """
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, cwd=root, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 2
    assert "unisim-test/does-not-exist" in lines[0] and str(tmp_path / "home" / "hub") in lines[0]
    assert "laion2b_s34b_b79k" in lines[1] and str(tmp_path / "home" / "hub") in lines[1]


@pytest.mark.parametrize(
    "name, content, what",
    [
        ("list.pt", [1, 2, 3], "a torch checkpoint holding a list, not a state dict"),
        ("nested.pt", {"state_dict": {"w": 1}}, "holding a dict whose 'state_dict' is a dict whose 'w' is an int"),
        ("empty.pt", {}, "a torch checkpoint holding an empty dict, not a state dict"),
        ("stop.pt", b".", "not a torch checkpoint (unreadable: IndexError: pop from empty list)"),
        ("random.pt", bytes(range(256)) * 4, "not a torch checkpoint (unreadable: "),
        ("random.safetensors", bytes(range(256)) * 4, "not a safetensors file (unreadable: "),
    ],
)
def test_lora_file_that_is_not_a_state_dict_says_what_it_is(tmp_models, tmp_path, name, content, what):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(LoraCheckpointError) as info:
        load_encoder(hf_model=str(tmp_models["hf_clip"]), lora=str(path))
    message = str(info.value)
    assert message.startswith(f"LoRA checkpoint {path} ") and what in message and "\n" not in message
    for expected in ("{'state_dict': {name: tensor, ...}, ...}", "a plain state dict", "a peft adapter folder"):
        assert expected in message


# -- the two halves of encode_images --------------------------------------------------------------
@pytest.mark.parametrize("backend", ["open_clip", "hf_clip", "hf_siglip"])
def test_pixel_transform_and_encode_pixels_are_the_halves_of_encode_images(tmp_models, backend):
    """What a DataLoader worker runs pickles without the model; image by image, stacked, it gives the
    embeddings encode_images gives, and encode_pixels counts the images it forwards."""
    import pickle

    if backend == "open_clip":
        enc = load_encoder(model_config=str(tmp_models["oc_config"]), pretrained=str(tmp_models["oc_weights"]))
    else:
        enc = load_encoder(hf_model=str(tmp_models[backend]))
    blob = pickle.dumps(enc.pixel_transform)
    assert len(blob) < len(pickle.dumps(enc.model)) / 2
    transform, images = pickle.loads(blob), tc.images(3)
    pixels = torch.stack([transform([image])[0] for image in images])
    torch.testing.assert_close(enc.encode_pixels(pixels), enc.encode_images(images), atol=1e-6, rtol=1e-5)
    assert enc.image_forwards == 6
