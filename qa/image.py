"""Decoded renders and the arrays the checks share (computed once per render, on demand)."""

from __future__ import annotations

import io
from functools import cached_property

import numpy as np
from PIL import Image

ANALYSIS_SIZE = 512  # blur/exposure statistics on a copy whose longer side is at most this
PALETTE_SIZE = 64  # palette and dominant colours on a copy whose longer side is at most this
MAX_PIXELS = 64 * 1024 * 1024  # refuse to decode larger images (decompression bombs)


def decode(data: bytes) -> Image.Image:
    """Decode image bytes into an RGB PIL image (fully loaded), refusing oversized images."""
    with Image.open(io.BytesIO(data)) as img:
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"image is {img.width}x{img.height}, over the {MAX_PIXELS} pixel cap")
        img.load()
        if img.mode == "RGB":
            return img.copy()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (0, 0, 0))  # transparent shows as black: flagged
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return img.convert("RGB")


def _fit(img: Image.Image, size: int) -> Image.Image:
    if max(img.size) <= size:
        return img
    scale = size / max(img.size)
    target = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(target, Image.Resampling.BOX)


class RenderImage:
    """One decoded render with lazily computed views the checks share."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    @classmethod
    def from_bytes(cls, data: bytes) -> RenderImage:
        return cls(decode(data))

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @cached_property
    def rgb(self) -> np.ndarray:
        """Full-resolution pixels, (H, W, 3) uint8."""
        return np.asarray(self.image, dtype=np.uint8)

    @cached_property
    def analysis_luma(self) -> np.ndarray:
        """Rec. 601 luma (0-255, float32) of a copy whose longer side is at most ANALYSIS_SIZE,
        so sharpness and exposure thresholds mean the same at every render size."""
        return np.asarray(_fit(self.image, ANALYSIS_SIZE).convert("L"), dtype=np.float32)

    @cached_property
    def palette_rgb(self) -> np.ndarray:
        """(N, 3) float64 RGB in [0, 1] of a small copy, for colour statistics."""
        small = np.asarray(_fit(self.image, PALETTE_SIZE), dtype=np.float64) / 255.0
        return small.reshape(-1, 3)
