"""Aspect ratio -> render resolution bucket, per model family.

Each family renders best near its native pixel count, with sides a multiple of what its
VAE and transformer/UNet need. Export crops/fits to the exact placement size later, so a
render only needs the closest bucket. README.md ("Resolution buckets") shows the table.
"""

from __future__ import annotations

import math
from functools import lru_cache

# family -> (native side in px, side multiple)
FAMILY_NATIVE: dict[str, tuple[int, int]] = {
    "sd": (512, 64),
    "sdxl": (1024, 64),
    "sd3": (1024, 64),
    "flux": (1024, 16),
}
SMALL_MULTIPLE = 16  # tiny offline models (resolution < 256)


def aspect_value(aspect: str) -> float:
    w, _, h = aspect.partition(":")
    return float(w) / float(h)


@lru_cache(maxsize=256)
def bucket(aspect: str, family: str, resolution: int | None = None) -> tuple[int, int]:
    """(width, height) for ``aspect`` near ``resolution``² pixels, sides on the family grid."""
    native, multiple = FAMILY_NATIVE[family]
    side = resolution or native
    if side < 256:
        multiple = SMALL_MULTIPLE
    ratio = aspect_value(aspect)
    area = side * side
    best: tuple[float, float, int, int] | None = None
    w0 = math.sqrt(area * ratio)
    for k in range(-3, 4):
        w = max(multiple, (round(w0 / multiple) + k) * multiple)
        h = max(multiple, round(w / ratio / multiple) * multiple)
        score = (abs(math.log((w / h) / ratio)), abs(math.log(w * h / area)), w, h)
        if best is None or score[:2] < best[:2]:
            best = score
    assert best is not None
    return best[2], best[3]


def nearest_aspect(width: int, height: int, aspects: tuple[str, ...]) -> str:
    """The aspect in ``aspects`` closest (in log ratio) to width:height."""
    target = width / height
    return min(aspects, key=lambda a: abs(math.log(aspect_value(a) / target)))
