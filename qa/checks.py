"""Technical checks on one render (numpy only, no torch).

Each check takes the decoded render, its job and its style (thresholds in ``style.qa``) and returns a
``Finding``: reason codes to fail, reason codes to review, and the scores it measured.
Luma statistics are on ``RenderImage.analysis_luma`` (0-255, longer side at most 512 px),
so a threshold means the same at every render size. docs/qa.md explains every reason code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from plan.jobs import RenderJob
from plan.styles import Style
from qa.image import RenderImage
from qa.verdicts import Finding

Check = Callable[[RenderImage, RenderJob, Style], Finding]

CLIP_LOW = 2.0  # luma at or below this counts as clipped shadows
CLIP_HIGH = 253.0  # luma at or above this counts as clipped highlights


def dimensions(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """The render is exactly job.width x job.height."""
    width, height = img.size
    if (width, height) == (job.width, job.height):
        return Finding()
    return Finding(fail=("wrong_size",), details={"size": f"{width}x{height}, expected {job.width}x{job.height}"})


def blank(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """Uniform (luma std below ``blank_std``) or near-black (mean luma below ``near_black_mean``)."""
    luma = img.analysis_luma
    mean, std = float(luma.mean()), float(luma.std())
    t = style.qa
    fail = tuple(reason for reason, hit in (("blank", std < t.blank_std), ("near_black", mean < t.near_black_mean)) if hit)
    return Finding(fail=fail, scores={"luma_mean": mean, "luma_std": std})


def nan_artifact(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """NaNs in a pipeline's output decode to exact (0, 0, 0) pixels: too many of them fail."""
    share = float(np.all(img.rgb == 0, axis=2).mean())
    fail = ("nan_artifact",) if share > style.qa.max_exact_black_share else ()
    return Finding(fail=fail, scores={"exact_black_share": share})


def exposure(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """Histogram clipping: more than ``max_clipped_share`` of pixels in crushed shadows or
    blown highlights."""
    luma = img.analysis_luma
    low, high = float((luma <= CLIP_LOW).mean()), float((luma >= CLIP_HIGH).mean())
    fail = tuple(reason for reason, share in (("underexposed", low), ("overexposed", high))
                 if share > style.qa.max_clipped_share)
    return Finding(fail=fail, scores={"clipped_low": low, "clipped_high": high})


def contrast(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """RMS contrast (luma std) below ``min_contrast``; a blank image is left to ``blank``."""
    std = float(img.analysis_luma.std())
    low = style.qa.blank_std <= std < style.qa.min_contrast
    return Finding(fail=("low_contrast",) if low else (), scores={"contrast": std})


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (valid region); 0 for images under 3x3."""
    if min(luma.shape) < 3:
        return 0.0
    lap = (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]) - 4.0 * luma[1:-1, 1:-1]
    return float(lap.var())


def sharpness(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """Blur: variance of the Laplacian below ``min_sharpness`` (0 turns the gate off)."""
    value = laplacian_variance(img.analysis_luma)
    blurry = value < style.qa.min_sharpness and float(img.analysis_luma.std()) >= style.qa.blank_std
    return Finding(fail=("blurry",) if blurry else (), scores={"sharpness": value})


TECHNICAL_CHECKS: Mapping[str, Check] = {
    "dimensions": dimensions,
    "blank": blank,
    "nan_artifact": nan_artifact,
    "exposure": exposure,
    "contrast": contrast,
    "sharpness": sharpness,
}
