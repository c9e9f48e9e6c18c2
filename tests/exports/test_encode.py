"""Capped encoders: highest quality that fits, few encodes, clear failure, deterministic, clean metadata."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from exports.encode import MAX_ENCODES, QUALITY, TOLERANCE, ByteCapError, _clean, _save, encode, search_quality
from exports.metadata import TRAINED_ALGORITHMIC_MEDIA, xmp_packet
from tests.exports.conftest import synthetic_render

XMP = xmp_packet("ab" * 32, "acme@2")


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return synthetic_render(128, 128).resize((480, 480), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_cap_is_met_at_nearly_the_highest_fitting_quality(image, fmt):
    uncapped = encode(image, fmt, max_bytes=None, xmp=XMP)
    lo, hi, _ = QUALITY[fmt]
    assert uncapped.quality == hi and uncapped.encodes == 1
    clean = _clean(image)
    for target in (hi - 8, lo + 12):
        cap = len(_save(clean, fmt, XMP, target))  # ``target`` just fits
        result = encode(image, fmt, max_bytes=cap, xmp=XMP)
        assert len(result.data) <= cap and result.encodes <= MAX_ENCODES
        # the stop rule trusts the size model to TOLERANCE steps; real curves bend, so allow twice that
        assert target - 2 * TOLERANCE <= result.quality < hi
        assert result.data == _save(clean, fmt, XMP, result.quality)


def test_search_takes_few_encodes_on_a_smooth_size_curve():
    # ln(bytes) linear in quality, as the predictor assumes: found in at most 3 encodes
    def encode_at(q: int) -> bytes:
        return b"x" * int(1000 * 1.07 ** q)

    for cap in (20_000, 60_000, 150_000, 400_000):
        result = search_quality(encode_at, 30, 90, cap, slope=0.05)
        assert len(result.data) <= cap and result.encodes <= 3
        assert len(encode_at(result.quality + TOLERANCE + 1)) > cap or result.quality + TOLERANCE + 1 > 90


def test_unreachable_cap_raises_with_the_numbers(image):
    with pytest.raises(ByteCapError, match=r"even quality 40 gives \d+ bytes, over the cap of 500 bytes"):
        encode(image, "jpeg", max_bytes=500, xmp=XMP)
    with pytest.raises(ByteCapError, match="PNG is .* bytes even with 64 colours, over the cap of 500 bytes"):
        encode(image, "png", max_bytes=500, xmp=XMP)


def test_png_is_lossless_then_palette_reduced(image):
    lossless = encode(image, "png", max_bytes=None, xmp=XMP)
    assert lossless.quality is None
    with Image.open(io.BytesIO(lossless.data)) as decoded:
        assert decoded.mode == "RGB" and decoded.tobytes() == image.convert("RGB").tobytes()
    reduced = encode(image, "png", max_bytes=len(lossless.data) - 1, xmp=XMP)
    assert reduced.quality in (256, 64) and len(reduced.data) < len(lossless.data)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif", "png"])
def test_bytes_are_deterministic_and_metadata_is_only_our_xmp(fmt):
    source = synthetic_render(96, 96)
    exif = Image.Exif()
    exif[0x010F] = "LeakyCam"
    source.info.update(exif=exif.tobytes(), icc_profile=b"not-a-real-profile")
    first = encode(source, fmt, max_bytes=20_000, xmp=XMP)
    assert first.data == encode(source.copy(), fmt, max_bytes=20_000, xmp=XMP).data
    assert b"LeakyCam" not in first.data and b"not-a-real-profile" not in first.data
    with Image.open(io.BytesIO(first.data)) as decoded:
        decoded.load()
        assert not decoded.getexif()
        xmp = json.dumps(decoded.getxmp())
    assert TRAINED_ALGORITHMIC_MEDIA in xmp and "ab" * 32 in xmp and "acme@2" in xmp


def test_unknown_format_is_rejected(image):
    with pytest.raises(ValueError, match="format must be one of webp, avif, jpeg, png but is 'gif'"):
        encode(image, "gif", max_bytes=None, xmp=XMP)
