"""Where the subject of an image is: spectral-residual saliency and its centroid (numpy only).

Exports crop around this point; expansions place their master on the wider canvas by it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_SALIENCY_SIZE = 64


def _box_blur(values: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    padded = np.pad(values, radius, mode="edge")
    out = np.zeros_like(values)
    for dy in range(size):
        for dx in range(size):
            out += padded[dy:dy + values.shape[0], dx:dx + values.shape[1]]
    return out / (size * size)


def saliency_map(image: Image.Image) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007) on a 64x64 grey thumbnail, 0..1."""
    grey = np.asarray(image.convert("L").resize((_SALIENCY_SIZE, _SALIENCY_SIZE), Image.Resampling.BILINEAR),
                      dtype=np.float64) / 255.0
    spectrum = np.fft.fft2(grey)
    log_amplitude = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amplitude - _box_blur(log_amplitude, 1)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = _box_blur(_box_blur(saliency, 2), 2)
    peak = saliency.max()
    return saliency / peak if peak > 0 else saliency


def focal_point(image: Image.Image) -> tuple[float, float]:
    """(x, y) as fractions of the image size: the centroid of the salient region, rounded to
    1/100 so that float noise between machines does not move the crop. Flat images: centre."""
    saliency = saliency_map(image)
    weights = np.where(saliency >= 0.5, saliency, 0.0)
    total = weights.sum()
    if total <= 0 or np.ptp(saliency) < 1e-6:
        return 0.5, 0.5
    ys, xs = np.mgrid[0:_SALIENCY_SIZE, 0:_SALIENCY_SIZE]
    fx = float((weights * (xs + 0.5)).sum() / total / _SALIENCY_SIZE)
    fy = float((weights * (ys + 0.5)).sum() / total / _SALIENCY_SIZE)
    return round(fx, 2), round(fy, 2)
