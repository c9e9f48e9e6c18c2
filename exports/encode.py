"""Encoders with byte caps: the highest quality that fits, found with a few encodes.

Every encoder setting is fixed (speed, method, threads, subsampling), so the same pixels give
the same bytes on every run and in every worker. Nothing from the source image's metadata is
carried over: no EXIF, GPS or ICC; only the XMP packet passed in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

FORMATS = ("webp", "avif", "jpeg", "png")
EXTENSIONS = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png"}
CONTENT_TYPES = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}

# (lowest allowed quality, highest quality, prior d ln(bytes) / d quality near the top).
QUALITY = {"jpeg": (40, 92, 0.08), "webp": (40, 90, 0.08), "avif": (30, 80, 0.065)}
PNG_COLOURS = (256, 64)  # lossless first, then these palette sizes when over the cap
MAX_ENCODES = 6
TOLERANCE = 2  # stop searching once the best fitting quality is this close to a failing one
_AIM = 0.97  # predict for slightly under the cap so the prediction usually fits first time


class ByteCapError(ValueError):
    """Even the lowest allowed quality does not fit the placement's byte cap."""


@dataclass(frozen=True)
class Encoded:
    data: bytes
    quality: int | None  # lossy: quality; PNG: palette colours, None when lossless
    encodes: int  # how many encodes it took


def _save(image: Image.Image, fmt: str, xmp: bytes, quality: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, "JPEG", quality=quality, subsampling=2, optimize=True, progressive=True, xmp=xmp)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality, method=4, xmp=xmp)
    elif fmt == "avif":
        image.save(buffer, "AVIF", quality=quality, speed=8, max_threads=1, subsampling="4:2:0", xmp=xmp)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        image.save(buffer, "PNG", compress_level=6, pnginfo=info)
    return buffer.getvalue()


def _clean(image: Image.Image) -> Image.Image:
    """An RGB copy with no metadata, so no encoder can pick up EXIF/ICC from ``info``."""
    clean = image.convert("RGB") if image.mode != "RGB" else image.copy()
    clean.info = {}
    return clean


def search_quality(encode_at: Callable[[int], bytes], lo: int, hi: int, max_bytes: int, slope: float) -> Encoded:
    """Highest quality in [lo, hi] whose encode fits ``max_bytes`` (within ``TOLERANCE``).

    Tries ``hi`` first; if that is too big, predicts the quality for the cap from ln(bytes)
    being close to linear in quality: with one point from ``slope``, afterwards from the
    secant through the measured points nearest the cap. Stops when the prediction says
    nothing above the best fitting quality fits, or it is within ``TOLERANCE`` of a failure.
    """
    sizes: dict[int, int] = {}
    fitting: dict[int, bytes] = {}
    quality = hi
    while len(sizes) < MAX_ENCODES:
        data = encode_at(quality)
        sizes[quality] = len(data)
        if len(data) <= max_bytes:
            fitting[quality] = data
        over = [q for q, size in sizes.items() if size > max_bytes]
        if not over:
            break
        best_fit, lowest_over = max(fitting, default=None), min(over)
        if best_fit is not None and lowest_over - best_fit <= TOLERANCE:
            break
        if best_fit is None and lowest_over == lo:
            break
        nxt = _predict(sizes, lowest_over, best_fit, max_bytes, slope)
        if best_fit is not None and nxt <= best_fit:
            break  # the size curve through the nearest points says nothing higher fits
        nxt = min(max(nxt, lo), lowest_over - 1)
        if nxt in sizes:  # no new information: bisect instead
            nxt = ((best_fit if best_fit is not None else lo) + lowest_over) // 2
            if nxt in sizes:
                break
        quality = nxt
    if not fitting:
        raise ByteCapError(f"even quality {min(sizes)} gives {sizes[min(sizes)]} bytes, over the cap of "
                           f"{max_bytes} bytes")
    best = max(fitting)
    return Encoded(fitting[best], best, len(sizes))


def _predict(sizes: dict[int, int], over: int, fit: int | None, max_bytes: int, slope: float) -> int:
    target = math.log(max_bytes * _AIM)
    if fit is not None:
        other = fit
    else:
        higher = [q for q in sizes if q > over]
        other = min(higher) if higher else None
    if other is not None and sizes[other] != sizes[over]:
        slope = max((math.log(sizes[other]) - math.log(sizes[over])) / (other - over), 1e-3)
    return math.floor(over - (math.log(sizes[over]) - target) / slope)


def encode(image: Image.Image, fmt: str, *, max_bytes: int | None, xmp: bytes) -> Encoded:
    """Encode ``image`` as ``fmt`` (webp, avif, jpeg, png) within ``max_bytes`` (None: no cap).

    Lossy formats get the highest quality that fits; PNG is lossless, then palette-reduced
    if over the cap. Raises ``ByteCapError`` if nothing fits.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} but is {fmt!r}")
    clean = _clean(image)
    if fmt == "png":
        return _encode_png(clean, max_bytes, xmp)
    lo, hi, slope = QUALITY[fmt]
    if max_bytes is None:
        return Encoded(_save(clean, fmt, xmp, hi), hi, 1)
    return search_quality(lambda q: _save(clean, fmt, xmp, q), lo, hi, max_bytes, slope)


def _encode_png(image: Image.Image, max_bytes: int | None, xmp: bytes) -> Encoded:
    for count, colours in enumerate((None, *PNG_COLOURS), start=1):
        source = image if colours is None else image.quantize(
            colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        data = _save(source, "png", xmp)
        if max_bytes is None or len(data) <= max_bytes:
            return Encoded(data, colours, count)
    raise ByteCapError(f"PNG is {len(data)} bytes even with {PNG_COLOURS[-1]} colours, over the cap of "
                       f"{max_bytes} bytes")
