"""unisim_clip vs a naive per-sample loop and a batched loop shaped like the authors', on Img-2AFC data
whose images are all distinct and on data that shares them.

Data, in the canonical format, photo-like PNGs (a smooth random pattern with mild noise, which
compresses and decodes about like a photo), ``--image-size`` square:

- distinct: NIGHTS-shaped, each of ``--triplets`` samples has its own reference and two alternatives;
- shared: PieAPP-shaped, ``--references`` x ``--distortions``, every pair of distortions of a
  reference is a sample, so references and alternatives recur.

Model: an open_clip architecture (default ViT-B-32, its own input size and preprocessing) with
seeded random weights. Paths:

- naive: the reference and both alternatives of each sample, one image per forward;
- batched: the authors' Img-2AFC loop (``eval/two_afc_eval.py`` of SaraGhazanfari/UniSim): a
  DataLoader with ``--num-workers`` workers over the samples, whose ``__getitem__`` decodes and
  preprocesses the sample's three images; per batch of ``--batch-size`` samples, one forward each
  for the references, the first and the second alternatives;
- unisim_clip: ``generate_until`` in process, ``num_workers=0`` and ``num_workers=--num-workers``.

Printed per data set: forwards per distinct image, end-to-end seconds and samples/s, ratios to the
naive and batched loops and to the pure forward time (the forwards alone, on the distinct images'
pixel tensors preprocessed beforehand, in batches of ``--batch-size``), the images/s one worker
decodes + preprocesses (one thread, as a DataLoader worker runs) with the workers needed to keep
up with these forwards, and whether all paths choose the same alternatives. Targets on the distinct
data: unisim_clip at least as fast as the batched loop, end to end within 15% of the pure forward
time; on the shared data, 1.0 forwards per distinct image. Then peak RSS of unisim_clip scoring R
and 4R references of the shared data, each in a fresh process (target: about the same, bounded by
the batch, not the dataset), and how busy the rest of the machine was meanwhile.

    python benchmarks/clip_throughput.py [--model ViT-B-32] [--triplets 64] [--references 8] [--distortions 6]
        [--image-size 256] [--batch-size 64] [--num-workers 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from unisim_tasks.data.schema import SAMPLE_FEATURES


def photo(rng, size: int) -> dict:
    low = rng.integers(0, 256, (size // 16 + 1, size // 16 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=np.int16)
    pixels = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
    return datasets.Image().encode_example(Image.fromarray(pixels))


def sample(uid: str, ref: dict, alternatives: list[dict]) -> dict:
    return {"uid": uid, "task": "img2afc", "dataset": "bench", "ref_image": ref, "ref_text": None,
            "images": alternatives, "texts": [], "attribute": None, "label": 0, "meta": "{}"}  # fmt: skip


def make_data(folder: Path, shape: str, args, references: int | None = None) -> int:
    """Write the ``shape`` ("distinct" or "shared") data set to folder/data; returns its size."""
    rng = np.random.default_rng(0)

    def records():
        if shape == "distinct":
            for t in range(args.triplets):
                yield sample(f"t{t}", photo(rng, args.image_size), [photo(rng, args.image_size) for _ in range(2)])
            return
        for r in range(references or args.references):
            ref, alts = photo(rng, args.image_size), [photo(rng, args.image_size) for _ in range(args.distortions)]
            for i in range(args.distortions):
                for j in range(i + 1, args.distortions):
                    yield sample(f"r{r}/{i}-{j}", ref, [alts[i], alts[j]])

    ds = datasets.Dataset.from_generator(records, features=SAMPLE_FEATURES, cache_dir=str(folder / "cache"))
    datasets.DatasetDict({"samples": ds}).save_to_disk(str(folder / "data"))
    return len(ds)


def random_weights(args, folder: Path) -> Path:
    """A checkpoint of the architecture with seeded random weights (no download needed)."""
    import open_clip

    path = folder / f"{args.model}-random.pt"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(open_clip.create_model(args.model, pretrained=None).state_dict(), path)
    return path


def model_for(args, folder: Path, weights: Path, num_workers: int):
    from unisim_models.unisim_clip import UniSimCLIP

    model = UniSimCLIP(model=args.model, pretrained=str(weights), batch_size=args.batch_size, num_workers=num_workers)
    model.task_dict = {"bench": datasets.load_from_disk(str(folder / "data"))}
    return model


def warm_up(args, weights: Path) -> None:
    """The process's first forwards (of a batch size) set up kernels and memory; keep them out of the timings."""
    from unisim_models.encoders import load_encoder

    encoder = load_encoder(model=args.model, pretrained=str(weights))
    pixels = encoder.pixel_transform([Image.new("RGB", (args.image_size, args.image_size))])
    for n in (args.batch_size, 1):
        encoder.encode_pixels(pixels.expand(n, -1, -1, -1))


def raw_samples(folder: Path):
    return datasets.load_from_disk(str(folder / "data"))["samples"].with_format("arrow")


def decode(data: bytes, transform) -> torch.Tensor:
    return transform([Image.open(io.BytesIO(data)).convert("RGB")])[0]


# -- the paths ---------------------------------------------------------------------------------
def naive(model, folder: Path, workers: int) -> list[int]:
    """Encode the reference and both alternatives of each sample, one image per forward pass."""
    encoder, choices = model.encoder, []
    for doc in model.task_dict["bench"]["samples"]:
        ref = encoder.encode_images([doc["ref_image"].convert("RGB")])
        alts = torch.cat([encoder.encode_images([im.convert("RGB")]) for im in doc["images"]])
        choices.append(int(torch.argmax(ref @ alts.T)))
    return choices


class Triplets(Dataset):
    """The authors' dataset shape: a sample's reference and alternatives, decoded and preprocessed."""

    def __init__(self, raw, transform) -> None:
        self.raw, self.transform = raw, transform

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        row = self.raw[i].to_pylist()[0]
        return [decode(im["bytes"], self.transform) for im in (row["ref_image"], *row["images"])]


def batched(model, folder: Path, workers: int) -> list[int]:
    encoder, choices = model.encoder, []
    loader = DataLoader(Triplets(raw_samples(folder), encoder.pixel_transform), batch_size=model.batch_size,
                        num_workers=workers)  # fmt: skip
    for ref, first, second in loader:
        ref, first, second = (encoder.encode_pixels(x) for x in (ref, first, second))
        choices += ((ref * second).sum(-1) > (ref * first).sum(-1)).long().tolist()
    return choices


def gathered(model, folder: Path, workers: int) -> list[int]:
    n = len(model.task_dict["bench"]["samples"])
    requests = [SimpleNamespace(args=("", {}, None, i, "bench", "samples")) for i in range(n)]
    return ["AB".index(json.loads(r)["answer"]) for r in model.generate_until(requests)]


def timed(path, workers: int, args, folder: Path, weights: Path) -> dict:
    model = model_for(args, folder, weights, workers if path is gathered else 0)
    start = time.perf_counter()
    choices = path(model, folder, workers)
    return {"choices": choices, "seconds": time.perf_counter() - start, "forwards": model.encoder.image_forwards}


class Decoded(Dataset):
    """Pixels of an image and the seconds its decode + preprocess took where it ran."""

    def __init__(self, images: list[bytes], transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        return decode(self.images[i], self.transform), time.perf_counter() - start


def components(args, folder: Path, weights: Path) -> dict:
    """The distinct images decoded + preprocessed in one DataLoader worker (one torch thread, as in
    unisim_clip; timed in the worker, so start-up and transfer are left out), then their forwards alone."""
    encoder = model_for(args, folder, weights, 0).encoder
    images = {}
    for row in raw_samples(folder)[:].to_pylist():
        for im in (row["ref_image"], *row["images"]):
            images.setdefault(hashlib.sha1(im["bytes"]).hexdigest(), im["bytes"])
    batches = list(DataLoader(Decoded(list(images.values()), encoder.pixel_transform), batch_size=args.batch_size,
                              num_workers=1))  # fmt: skip
    decode_s = sum(float(seconds.sum()) for _, seconds in batches)
    start = time.perf_counter()
    for pixels, _ in batches:
        encoder.encode_pixels(pixels)
    return {"distinct": len(images), "decode_per_s": len(images) / decode_s, "forward_s": time.perf_counter() - start}


def compare(args, shape: str, weights: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n = make_data(folder, shape, args)
        w = args.num_workers
        paths = {"naive": (naive, 0), f"batched w={w}": (batched, w), "unisim_clip w=0": (gathered, 0),
                 f"unisim_clip w={w}": (gathered, w)}  # fmt: skip
        # rounds over all paths, so that load from elsewhere hits each alike; the best of each is kept
        rounds = []
        for _ in range(args.repeats):
            part = components(args, folder, weights)
            rounds.append((part, {name: timed(*path, args, folder, weights) for name, path in paths.items()}))

    parts = [part for part, _ in rounds]
    runs = {name: min((r[name] for _, r in rounds), key=lambda r: r["seconds"]) for name in paths}
    distinct, forward_s = parts[0]["distinct"], min(part["forward_s"] for part in parts)
    rate = max(part["decode_per_s"] for part in parts)
    what = "NIGHTS-shaped, all images distinct" if shape == "distinct" else "PieAPP-shaped, shared references"
    print(f"\n{shape}: {n} Img-2AFC samples ({what}), {distinct} distinct images, {args.image_size}px PNG; "
          f"times: best of {args.repeats}")  # fmt: skip
    names, width = list(runs), 18
    print(f"{'':<30}" + "".join(f"{name:>{width}}" for name in names))
    rows = {
        "forwards per distinct image": lambda r: f"{r['forwards'] / distinct:.2f}",
        "end to end (s)": lambda r: f"{r['seconds']:.1f}",
        "samples/s": lambda r: f"{n / r['seconds']:.1f}",
        "speed-up over naive": lambda r: f"{runs['naive']['seconds'] / r['seconds']:.2f}x",
        f"speed-up over batched w={w}": lambda r: f"{runs[names[1]]['seconds'] / r['seconds']:.2f}x",
        "end to end / pure forward": lambda r: f"{r['seconds'] / forward_s:.2f}",
    }
    for label, cell in rows.items():
        print(f"{label:<30}" + "".join(f"{cell(runs[name]):>{width}}" for name in names))
    print(f"pure forward: {forward_s:.1f} s for the {distinct} distinct images in batches of {args.batch_size} "
          f"({distinct / forward_s:.1f} images/s)")  # fmt: skip
    print(f"decode + preprocess: {rate:.1f} images/s per worker (one thread); workers to keep up with these "
          f"forwards: {distinct / forward_s / rate:.2f}")  # fmt: skip
    print(f"same choices on all paths: {all(r['choices'] == runs['naive']['choices'] for r in runs.values())}")


def busy_cpu_seconds() -> float:
    """CPU time all processes of the machine have used (Linux)."""
    user, nice, system, _idle, _iowait, *rest = map(int, Path("/proc/stat").read_text().split("\n")[0].split()[1:])
    return (user + nice + system + sum(rest)) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def memory_probe(args) -> None:
    """Child process: score the data in --data-dir with unisim_clip; print peak RSS (MiB)."""
    folder = Path(args.data_dir)
    model = model_for(args, folder, random_weights(args, folder), args.num_workers)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gathered(model, folder, args.num_workers)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = len(model.task_dict["bench"]["samples"])
    print(json.dumps({"samples": n, "peak_rss_mib": peak / 1024, "growth_mib": (peak - base) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--triplets", type=int, default=64)
    parser.add_argument("--references", type=int, default=8)
    parser.add_argument("--distortions", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="time each path this many times, keep the best")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args)

    start, busy = time.perf_counter(), busy_cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_weights(args, Path(tmp))
        warm_up(args, weights)
        print(f"model {args.model} (random weights), batch {args.batch_size}, {torch.get_num_threads()} torch "
              f"threads in the main process")  # fmt: skip
        for shape in ("distinct", "shared"):
            compare(args, shape, weights)

    probes = []
    for references in (args.references, 4 * args.references):
        with tempfile.TemporaryDirectory() as tmp:
            make_data(Path(tmp), "shared", args, references)
            cmd = [sys.executable, __file__, "--memory-probe", "--data-dir", tmp, "--model", args.model,
                   "--distortions", str(args.distortions), "--image-size", str(args.image_size),
                   "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            probes.append(json.loads(out.splitlines()[-1]))
    small, large = probes
    print(f"\npeak RSS while scoring the shared data (fresh process: model + data loaded, then scored): "
          f"{small['samples']} samples {small['peak_rss_mib']:.0f} MiB, {large['samples']} samples "
          f"{large['peak_rss_mib']:.0f} MiB, ratio {large['peak_rss_mib'] / small['peak_rss_mib']:.2f}; "
          f"growth during scoring {small['growth_mib']:.0f} vs {large['growth_mib']:.0f} MiB")  # fmt: skip
    others = max(0.0, busy_cpu_seconds() - busy - own_cpu_seconds())  # clock-tick rounding can go below 0
    print(f"other processes on this machine used {others / (time.perf_counter() - start):.2f} cores on average "
          "during the run (the timings are only as steady as that is low)")  # fmt: skip


if __name__ == "__main__":
    main()
