"""Fit a render to a placement: pick the nearest-aspect render, cover-crop around its focal
point (spectral-residual saliency), resample with Lanczos to the exact size."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from exports.placements import Placement
from plan.jobs import RenderJob

_SALIENCY_SIZE = 64


def nearest_render(renders: Mapping[str, RenderJob], placement: Placement) -> RenderJob:
    """The render whose aspect ratio is closest (in log ratio) to the placement's; ties go to
    the larger render, then to the aspect name, so the choice never depends on dict order."""
    if not renders:
        raise ValueError(f"no renders to export for placement {placement.id}")

    def distance(item: tuple[str, RenderJob]) -> tuple[float, int, str]:
        aspect, job = item
        return (round(abs(math.log(job.width / job.height / placement.aspect)), 9), -job.width * job.height, aspect)

    return min(renders.items(), key=distance)[1]


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


def crop_box(size: tuple[int, int], width: int, height: int,
             focal: tuple[float, float] = (0.5, 0.5)) -> tuple[float, float, float, float]:
    """The largest box of the target aspect inside ``size``, centred on ``focal`` as far as
    the image edges allow. Clamped into the image: float rounding (a side of 767.9999999 or
    768.0000001, a left edge of -1e-14) never puts an edge outside it, which Pillow refuses."""
    src_w, src_h = size
    scale = max(width / src_w, height / src_h)
    box_w, box_h = min(width / scale, src_w), min(height / scale, src_h)
    left = min(max(focal[0] * src_w - box_w / 2, 0.0), src_w - box_w)
    top = min(max(focal[1] * src_h - box_h / 2, 0.0), src_h - box_h)
    return left, top, min(left + box_w, src_w), min(top + box_h, src_h)


def upscale_factor(size: tuple[int, int], width: int, height: int) -> float:
    """How much a cover fit enlarges the source (< 1: it is downscaled)."""
    return max(width / size[0], height / size[1])


def cover_fit(image: Image.Image, width: int, height: int, focal: tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """Exactly ``width`` x ``height``: crop to the aspect around ``focal``, Lanczos resample."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.resize((width, height), Image.Resampling.LANCZOS, box=crop_box(rgb.size, width, height, focal))
