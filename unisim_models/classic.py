"""Weight-free perceptual measures: full-reference distances, image statistics, colour histograms.

Every function takes RGB images as ``uint8`` arrays of shape ``[H, W, 3]``.

- Img-2AFC: ``l2`` (mean squared error), ``psnr`` and ``ssim`` (Wang et al., 2004, with their
  Gaussian window, sigma 1.5), computed by scikit-image. PSNR is a decreasing function of the MSE,
  so it orders alternatives as ``l2`` does; both are offered because both are reported.
- PAA: one statistic per attribute (see ``ATTRIBUTES``).
- OOO / IR: the intersection of normalised RGB colour histograms (Swain and Ballard, 1991).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

HISTOGRAM_BINS = 8  # per channel: 512 bins in all


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _same_size(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """A full-reference measure needs equal sizes: an alternative of another size is resized
    (bilinear) to the reference's."""
    if other.shape == reference.shape:
        return other
    height, width = reference.shape[:2]
    return to_array(Image.fromarray(other).resize((width, height), Image.BILINEAR))


def _l2(reference: np.ndarray, other: np.ndarray) -> float:
    return float(mean_squared_error(reference, other))


def _psnr(reference: np.ndarray, other: np.ndarray) -> float:
    if np.array_equal(reference, other):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, other, data_range=255))


def _ssim(reference: np.ndarray, other: np.ndarray) -> float:
    return float(
        structural_similarity(
            reference, other, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )  # fmt: skip
    )


# name -> (measure, True if a larger value means closer to the reference)
FULL_REFERENCE = {"l2": (_l2, False), "psnr": (_psnr, True), "ssim": (_ssim, True)}


def full_reference(metric: str, reference: np.ndarray, alternatives: list[np.ndarray]) -> list[float]:
    """The measure of each alternative against the reference."""
    measure, _ = FULL_REFERENCE[metric]
    return [measure(reference, _same_size(reference, alternative)) for alternative in alternatives]


def luminance(image: np.ndarray) -> np.ndarray:
    """Relative luminance in [0, 1] from sRGB values, with the Rec. 709 weights (no gamma decoding)."""
    rgb = image.astype(np.float64) / 255.0
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def brightness(image: np.ndarray) -> float:
    """Mean luminance."""
    return float(luminance(image).mean())


def colorfulness(image: np.ndarray) -> float:
    """Hasler and Süsstrunk (2003), "Measuring colourfulness in natural images": the spread and mean
    of the opponent channels rg = R - G and yb = (R + G) / 2 - B."""
    r, g, b = (image[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, (r + g) / 2 - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def contrast(image: np.ndarray) -> float:
    """RMS contrast: the standard deviation of the luminance (Peli, 1990)."""
    return float(luminance(image).std())


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the luminance (Pech-Pacheco et al., 2000)."""
    return float(ndimage.laplace(luminance(image)).var())


ATTRIBUTES = {"brightness": brightness, "colorfulness": colorfulness, "contrast": contrast, "sharpness": sharpness}


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """The RGB histogram, ``HISTOGRAM_BINS`` per channel, normalised to sum 1."""
    bins = (image.reshape(-1, 3).astype(np.int64) * HISTOGRAM_BINS) // 256
    index = (bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]
    counts = np.bincount(index, minlength=HISTOGRAM_BINS**3).astype(np.float64)
    return counts / counts.sum()


def histogram_similarity(a: np.ndarray, b: np.ndarray):
    """Histogram intersection of normalised histograms (1 for the same colour distribution); either
    side may be a stack of histograms, giving one value per row."""
    return np.minimum(a, b).sum(axis=-1)
