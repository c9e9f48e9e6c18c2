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

import numpy as np
import PIL
from PIL import Image, PngImagePlugin, features

FORMATS = ("webp", "avif", "jpeg", "png")
EXTENSIONS = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png"}
CONTENT_TYPES = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}

# (lowest allowed quality, highest quality, prior d ln(bytes) / d scale(quality) near the top).
QUALITY = {"jpeg": (40, 92, 0.65), "webp": (40, 90, 0.1), "avif": (30, 80, 0.05)}
PNG_COLOURS = (256, 64)  # lossless first, then these palette sizes when over the cap
# Fixed encoder options per format: with the quality, these decide the bytes (see ``encoder_identity``).
SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "jpeg": {"subsampling": 2, "optimize": True, "progressive": True},
    "webp": {"method": 4},
    "avif": {"speed": 8, "max_threads": 1, "subsampling": "4:2:0"},
    "png": {"compress_level": 6},
}
_PIL_NAMES = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "png": "PNG"}
_CODECS = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "png": "zlib"}  # PIL.features names
MAX_ENCODES = 6
TOLERANCE = 2  # quality steps: a fit this close to the predicted best is taken as the best
_AIM = 0.95  # predict for slightly under the cap so that a prediction usually fits
_FLATTEN = 0.6  # size curves flatten at low quality: extrapolate with this share of the slope


def quality_scale(fmt: str) -> Callable[[int], float]:
    """The axis along which ln(bytes) is close to linear: libjpeg's quantiser scaling for JPEG
    (ln of 5000/q below 50, 200-2q above), the quality itself for WebP and AVIF."""
    if fmt == "jpeg":
        return lambda q: -math.log(5000 / q if q < 50 else 200 - 2 * q)
    return float


class ByteCapError(ValueError):
    """Even the lowest allowed quality does not fit the placement's byte cap."""


@dataclass(frozen=True)
class Encoded:
    data: bytes
    quality: int | None  # lossy: quality; PNG: palette colours, None when lossless
    encodes: int  # how many encodes it took


def _save(image: Image.Image, fmt: str, xmp: bytes, quality: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        image.save(buffer, "PNG", pnginfo=info, **SAVE_OPTIONS[fmt])
    else:
        image.save(buffer, _PIL_NAMES[fmt], quality=quality, xmp=xmp, **SAVE_OPTIONS[fmt])
    return buffer.getvalue()


def encoder_identity(fmt: str) -> dict[str, object]:
    """Everything besides the pixels and the XMP that decides the bytes ``encode`` writes for
    ``fmt``: its options, the quality search's settings and the library versions."""
    return {
        "format": fmt, "options": SAVE_OPTIONS[fmt], "quality": QUALITY.get(fmt),
        "png_colours": PNG_COLOURS if fmt == "png" else None,
        "search": [MAX_ENCODES, TOLERANCE, _AIM, _FLATTEN],
        "pillow": PIL.__version__, "codec": features.version(_CODECS[fmt]), "numpy": np.__version__,
    }


def _clean(image: Image.Image) -> Image.Image:
    """An RGB image with no metadata, so no encoder can pick up EXIF/ICC from ``info``: the
    image itself if it is one, else a copy."""
    if image.mode == "RGB" and not image.info:
        return image
    clean = image.convert("RGB") if image.mode != "RGB" else image.copy()
    clean.info = {}
    return clean


def search_quality(encode_at: Callable[[int], bytes], lo: int, hi: int, max_bytes: int, slope: float,
                   scale: Callable[[int], float] = float) -> Encoded:
    """The highest quality in [lo, hi] whose encode fits ``max_bytes``, to within about ``TOLERANCE``.

    Tries ``hi`` first. Then predicts the quality for the cap from ln(bytes) being close to
    linear in ``scale(quality)``: from the prior ``slope`` after one encode, then from the
    measured points (see ``_predict``). Stops at a fit once the next failing quality is at most
    ``TOLERANCE + 1`` above it, or the model says at most ``TOLERANCE`` more steps would fit;
    never more than ``MAX_ENCODES`` encodes. The result always fits; no fit raises.
    """
    sizes: dict[int, int] = {}
    fitting: dict[int, bytes] = {}
    quality = hi
    while True:
        data = encode_at(quality)
        sizes[quality] = len(data)
        if len(data) <= max_bytes:
            fitting[quality] = data
        over = [q for q, size in sizes.items() if size > max_bytes]
        if not over or len(sizes) >= MAX_ENCODES:
            break
        best_fit, lowest_over = max(fitting, default=None), min(over)
        if best_fit is None and lowest_over == lo:
            break  # nothing fits
        predicted = _predict(sizes, best_fit, lowest_over, math.log(max_bytes * _AIM), slope, scale, lo)
        if best_fit is None:
            quality = predicted
            continue
        at_cap = _predict(sizes, best_fit, lowest_over, math.log(max_bytes), slope, scale, lo)
        if at_cap - best_fit <= TOLERANCE or lowest_over - best_fit <= TOLERANCE + 1:
            break  # the best fit is (predicted to be) within TOLERANCE of the highest that fits
        quality = min(max(predicted, best_fit + TOLERANCE + 1), lowest_over - 1)
    if not fitting:
        raise ByteCapError(f"even quality {min(sizes)} gives {sizes[min(sizes)]} bytes, over the cap of "
                           f"{max_bytes} bytes")
    best = max(fitting)
    return Encoded(fitting[best], best, len(sizes))


def _predict(sizes: dict[int, int], fit: int | None, over: int, target: float, slope: float,
             scale: Callable[[int], float], lo: int) -> int:
    """The highest quality that the size model puts at or under ``target`` (ln bytes).

    Bracketed (a fit and an overshoot known): a curve through the (up to) three measured
    points nearest the target, a parabola once there are three, since the curves bend.
    Otherwise: a line down from the lowest overshoot, steeper than measured (``_FLATTEN``).
    """
    if fit is not None:
        nearest = sorted(sizes, key=lambda q: abs(math.log(sizes[q]) - target))[:3]
        span = range(fit, over + 1)
        model = np.polyval(np.polyfit([scale(q) for q in nearest], [math.log(sizes[q]) for q in nearest],
                                      len(nearest) - 1), [scale(q) for q in span])
        if len(nearest) < 3 or np.any(np.diff(model) < 0):  # not monotone here: use the bracket's secant
            model = np.interp([scale(q) for q in span], [scale(fit), scale(over)],
                              [math.log(sizes[fit]), math.log(sizes[over])])
        return max((q for q, size in zip(span, model, strict=True) if size <= target), default=fit)
    higher = [q for q in sizes if q > over]
    if higher and sizes[min(higher)] != sizes[over]:
        other = min(higher)
        measured = (math.log(sizes[other]) - math.log(sizes[over])) / (scale(other) - scale(over))
        slope = max(measured, 1e-6) * _FLATTEN
    wanted = scale(over) - (math.log(sizes[over]) - target) / slope
    return max((q for q in range(lo, over) if scale(q) <= wanted), default=lo)


def encode(image: Image.Image, fmt: str, *, max_bytes: int | None, xmp: bytes,
           finish: Callable[[bytes], bytes] | None = None) -> Encoded:
    """Encode ``image`` as ``fmt`` (webp, avif, jpeg, png) within ``max_bytes`` (None: no cap).

    Lossy formats get the highest quality that fits; PNG is lossless, then palette-reduced
    if over the cap. ``finish`` (e.g. C2PA signing) is applied to every candidate encode, so
    the cap holds for the finished file. Raises ``ByteCapError`` if nothing fits.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} but is {fmt!r}")
    clean = _clean(image)
    done = finish or (lambda data: data)
    if fmt == "png":
        return _encode_png(clean, max_bytes, xmp, done)
    lo, hi, slope = QUALITY[fmt]
    if max_bytes is None:
        return Encoded(done(_save(clean, fmt, xmp, hi)), hi, 1)
    return search_quality(lambda q: done(_save(clean, fmt, xmp, q)), lo, hi, max_bytes, slope, quality_scale(fmt))


def _encode_png(image: Image.Image, max_bytes: int | None, xmp: bytes, done: Callable[[bytes], bytes]) -> Encoded:
    for count, colours in enumerate((None, *PNG_COLOURS), start=1):
        source = image if colours is None else image.quantize(
            colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        data = done(_save(source, "png", xmp))
        if max_bytes is None or len(data) <= max_bytes:
            return Encoded(data, colours, count)
    raise ByteCapError(f"PNG is {len(data)} bytes even with {PNG_COLOURS[-1]} colours, over the cap of "
                       f"{max_bytes} bytes")
