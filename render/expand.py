"""Outpainting a master render to another aspect ratio (creative families), numpy + PIL only.

The master keeps its own pixels 1:1 on a canvas extended along one side
(``plan.resolution.expand_size``). It is placed so that its focal point (the style's ``focal``,
else saliency) sits as near the canvas centre as the canvas allows. The inpainting mask covers
the new area and reaches ``overlap`` pixels into the master with a feathered (blurred) edge, so
the model sees, and may blend across, the seam; after decoding, the master's pixels are pasted
back exactly. ``master_box`` is the one place that says where the master sits: render and QA
both use it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from plan.jobs import RenderJob
from render.focal import focal_point


def master_box(master: Image.Image, job: RenderJob) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the master on the expansion's canvas (``job.width`` x
    ``job.height``). Raises ValueError when the master does not fit the canvas."""
    width, height = master.size
    if width > job.width or height > job.height:
        raise ValueError(f"master {width}x{height} does not fit the {job.width}x{job.height} canvas of expansion "
                         f"{job.key} ({job.aspect})")
    fx, fy = job.expand_focal if job.expand_focal is not None else focal_point(master)
    left = min(max(round(job.width / 2 - fx * width), 0), job.width - width)
    top = min(max(round(job.height / 2 - fy * height), 0), job.height - height)
    return left, top, left + width, top + height


def overlap(master_size: tuple[int, int]) -> int:
    """How far the inpainting mask reaches into the master (pixels): 1/16 of its shorter side."""
    return max(2, min(master_size) // 16)


def expansion_inputs(master: Image.Image, job: RenderJob) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
    """(canvas, mask, box) for the inpaint pipeline: the master on the canvas with its edge pixels
    stretched over the new area (the VAE then sees no hard black border), and a mask (L, 255 =
    paint) covering the new area and a feathered band of the master's edge."""
    box = master_box(master, job)
    left, top, right, bottom = box
    pixels = np.asarray(master.convert("RGB"))
    canvas = np.pad(pixels, ((top, job.height - bottom), (left, job.width - right), (0, 0)), mode="edge")
    band = overlap(master.size)
    mask = np.full((job.height, job.width), 255, dtype=np.uint8)
    # keep the master, less a band along each side that borders new area
    inner = [top + band * (top > 0), bottom - band * (bottom < job.height),
             left + band * (left > 0), right - band * (right < job.width)]
    mask[inner[0]:inner[1], inner[2]:inner[3]] = 0
    feathered = Image.fromarray(mask, mode="L").filter(ImageFilter.GaussianBlur(band / 2))
    return Image.fromarray(canvas, mode="RGB"), feathered, box


def paste_master(pixels: np.ndarray, master: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The decoded expansion (uint8 HxWx3) with the master's pixels put back exactly in ``box``."""
    left, top, right, bottom = box
    out = np.array(pixels, dtype=np.uint8, copy=True)
    out[top:bottom, left:right] = master
    return out
