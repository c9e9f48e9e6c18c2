"""Cross-ratio QA of creative families: every expansion against its master.

(a) the master's region of the expansion holds the master's pixels exactly (they are pasted
back after decoding, so a difference is a bug: fail closed, ``family_master_changed``);
(b) the seam: the luma step across the master's border, against the image's own step between
neighbouring pixels, at most ``qa.max_seam_ratio`` (``family_seam``);
(c) with a CLIP model (``qa.clip_model``), the image-image cosine of expansion and master at
least ``qa.min_family_similarity`` (``family_low_similarity``).
Each failure sends the expansion, and so its whole asset variant (the family), to review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plan.jobs import RenderJob
from plan.styles import Style
from qa.image import decode
from qa.verdicts import Finding
from render.expand import master_box
from store.base import Store
from store.keys import render_key

MIN_TEXTURE = 1.0  # luma steps below this count as this: a flat image has no texture to compare with


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def seam_ratio(pixels: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean luma step across the master's borders that face new area, divided by the image's mean
    step between neighbouring pixels (1: the seam is as strong as the picture's own detail)."""
    luma = _luma(pixels)
    height, width = luma.shape
    left, top, right, bottom = box
    steps = []
    if top > 0:
        steps.append(np.abs(luma[top, left:right] - luma[top - 1, left:right]))
    if bottom < height:
        steps.append(np.abs(luma[bottom - 1, left:right] - luma[bottom, left:right]))
    if left > 0:
        steps.append(np.abs(luma[top:bottom, left] - luma[top:bottom, left - 1]))
    if right < width:
        steps.append(np.abs(luma[top:bottom, right - 1] - luma[top:bottom, right]))
    if not steps:
        return 0.0
    texture = (np.abs(np.diff(luma, axis=0)).mean() + np.abs(np.diff(luma, axis=1)).mean()) / 2
    return float(np.concatenate(steps).mean() / max(texture, MIN_TEXTURE))


def check_expansion(job: RenderJob, expansion: np.ndarray, master: np.ndarray, style: Style,
                    similarity: float | None) -> Finding:
    """The family checks of one expansion (uint8 HxWx3 arrays); ``similarity``: CLIP cosine to
    the master, None when the style names no CLIP model."""
    from PIL import Image

    box = master_box(Image.fromarray(master), job)
    left, top, right, bottom = box
    review: list[str] = []
    details: dict[str, str] = {"master_job_key": job.master_key or ""}
    changed = int(np.any(expansion[top:bottom, left:right] != master, axis=-1).sum())
    if changed:
        review.append("family_master_changed")
        details["family_master_changed"] = f"{changed} master pixels differ in the expansion at {box}"
    ratio = seam_ratio(expansion, box)
    scores = {"seam_ratio": ratio}
    if ratio > style.qa.max_seam_ratio:
        review.append("family_seam")
    if similarity is not None:
        scores["family_similarity"] = similarity
        if similarity < style.qa.min_family_similarity:
            review.append("family_low_similarity")
    return Finding(review=tuple(review), scores=scores, details=details)


def family_checks(jobs: Sequence[RenderJob], store: Store, styles: Mapping[str, Style],
                  embeddings: Mapping[str, np.ndarray]) -> tuple[dict[str, Finding], dict[str, str]]:
    """(findings, errors) by job key for the expansions among ``jobs``; ``embeddings``: CLIP
    image embeddings by job key (masters included when their style names a CLIP model). A master
    that cannot be read sends its expansions to review (``family_master_missing``)."""
    findings: dict[str, Finding] = {}
    errors: dict[str, str] = {}
    masters: dict[str, np.ndarray | None] = {}
    for job in jobs:
        if not job.is_expansion:
            continue
        try:
            if job.master_key not in masters:
                try:
                    masters[job.master_key] = np.asarray(decode(store.get(render_key(job.master_key))))
                except FileNotFoundError:
                    masters[job.master_key] = None
            master = masters[job.master_key]
            if master is None:
                findings[job.key] = Finding(review=("family_master_missing",),
                                            details={"master_job_key": job.master_key})
                continue
            expansion = np.asarray(decode(store.get(render_key(job.key))))
            similarity = None
            if job.key in embeddings and job.master_key in embeddings:
                similarity = float(embeddings[job.key] @ embeddings[job.master_key])
            findings[job.key] = check_expansion(job, expansion, master, styles[f"{job.style}@{job.style_version}"],
                                                similarity)
        except Exception as exc:  # fail closed: the family goes to review
            errors[job.key] = f"{type(exc).__name__}: {exc}"[:500]
    return findings, errors
