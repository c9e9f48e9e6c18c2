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


AREA_WEIGHT = 0.5  # how much a pixel-count error counts against an aspect error (both in log units)


@lru_cache(maxsize=256)
def bucket(aspect: str, family: str, resolution: int | None = None) -> tuple[int, int]:
    """(width, height) for ``aspect`` near ``resolution``² pixels, sides on the family grid.

    Minimises |log aspect error| + AREA_WEIGHT * |log pixel-count error|, which picks the
    buckets the families were trained on (SDXL 9:16 -> 768x1344, not an exact 576x1024).
    """
    native, multiple = FAMILY_NATIVE[family]
    side = resolution or native
    if side < 256:
        multiple = SMALL_MULTIPLE
    ratio = aspect_value(aspect)
    area = side * side

    def score(wh: tuple[int, int]) -> tuple[float, int]:
        w, h = wh
        return abs(math.log(w / h / ratio)) + AREA_WEIGHT * abs(math.log(w * h / area)), w

    candidates = []
    for w in range(multiple, 4 * side + 1, multiple):
        h = max(multiple, round(w / ratio / multiple) * multiple)
        candidates.append((w, h))
    return min(candidates, key=score)


def side_multiple(family: str, resolution: int | None = None) -> int:
    native, multiple = FAMILY_NATIVE[family]
    return SMALL_MULTIPLE if (resolution or native) < 256 else multiple


def expand_size(master: tuple[int, int], aspect: str, family: str, resolution: int | None = None) -> tuple[int, int]:
    """The canvas an expansion outpaints: the master at its own size, extended along one side to
    ``aspect`` (rounded up to the family's side multiple), so the master's pixels are kept 1:1."""
    width, height = master
    multiple = side_multiple(family, resolution)
    ratio = aspect_value(aspect)
    if ratio >= width / height:
        return max(width, math.ceil(height * ratio / multiple) * multiple), height
    return width, max(height, math.ceil(width / ratio / multiple) * multiple)


@lru_cache(maxsize=4096)  # a few placements and styles, asked once per row
def nearest_aspect(width: int, height: int, aspects: tuple[str, ...]) -> str:
    """The aspect in ``aspects`` closest (in log ratio) to width:height."""
    target = width / height
    return min(aspects, key=lambda a: abs(math.log(aspect_value(a) / target)))
