"""Fit a render to a placement: pick the nearest-aspect render, cover-crop around its focal
point (spectral-residual saliency, ``render.focal``), resample with Lanczos to the exact size."""

from __future__ import annotations

import math
from collections.abc import Mapping

from PIL import Image

from exports.placements import Placement
from plan.jobs import RenderJob
from render.focal import focal_point

__all__ = ["cover_fit", "crop_box", "focal_point", "nearest_render", "upscale_factor"]


def nearest_render(renders: Mapping[str, RenderJob], placement: Placement) -> RenderJob:
    """The render whose aspect ratio is closest (in log ratio) to the placement's; ties go to
    the larger render, then to the aspect name, so the choice never depends on dict order."""
    if not renders:
        raise ValueError(f"no renders to export for placement {placement.id}")

    def distance(item: tuple[str, RenderJob]) -> tuple[float, int, str]:
        aspect, job = item
        return (round(abs(math.log(job.width / job.height / placement.aspect)), 9), -job.width * job.height, aspect)

    return min(renders.items(), key=distance)[1]


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
