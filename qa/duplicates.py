"""Near-duplicates among a campaign's variants of the same asset and aspect.

A later variant is a near-duplicate of an earlier one when their 64-bit difference hashes
(dHash) differ in at most ``duplicate_hamming`` bits, or, where the style names a CLIP model,
their CLIP image embeddings have cosine at least ``duplicate_cosine``. The later variant is
flagged ``near_duplicate`` with ``details["duplicate_of"]`` = the earlier job key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from plan.jobs import RenderJob
from plan.styles import Style
from qa.verdicts import Finding

HASH_SIDE = 8


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey thumbnail brighter than its right neighbour."""
    small = np.asarray(image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _group(job: RenderJob) -> tuple:
    return (job.campaign, job.row_key, job.aspect, job.style, job.style_version)


def near_duplicates(jobs: Sequence[RenderJob], styles: Mapping[str, Style], hashes: Mapping[str, int],
                    embeddings: Mapping[str, np.ndarray]) -> dict[str, Finding]:
    """Findings (by job key) for every later variant of an asset and aspect: ``near_duplicate``
    if it repeats an earlier one, and its nearest distances as scores. Jobs without a hash
    (render unreadable) are skipped; embeddings (unit vectors) are optional."""
    groups: dict[tuple, list[RenderJob]] = {}
    for job in jobs:
        if job.key in hashes:
            groups.setdefault(_group(job), []).append(job)
    findings: dict[str, Finding] = {}
    for members in groups.values():
        members = sorted({j.key: j for j in members}.values(), key=lambda j: (j.variant, j.reroll, j.key))
        for i, later in enumerate(members[1:], start=1):
            t = styles[f"{later.style}@{later.style_version}"].qa
            nearest: dict[str, float] = {}
            for earlier in members[:i]:
                distance = hamming(hashes[later.key], hashes[earlier.key])
                nearest["duplicate_hamming"] = min(nearest.get("duplicate_hamming", 64.0), float(distance))
                close = distance <= t.duplicate_hamming
                if later.key in embeddings and earlier.key in embeddings:
                    cosine = float(np.dot(embeddings[later.key], embeddings[earlier.key]))
                    nearest["duplicate_cosine"] = max(nearest.get("duplicate_cosine", -1.0), cosine)
                    close = close or cosine >= t.duplicate_cosine
                if close:
                    findings[later.key] = Finding(fail=("near_duplicate",), scores=nearest,
                                                  details={"duplicate_of": earlier.key})
                    break
            else:
                findings[later.key] = Finding(scores=nearest)
    return findings
