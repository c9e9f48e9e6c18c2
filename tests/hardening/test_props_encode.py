"""Properties of the byte-cap encoder (exports/encode.py): a result always fits, is found in a
bounded number of encodes, and a cap is reported unreachable only when it is."""

from __future__ import annotations

import io
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from exports.encode import MAX_ENCODES, QUALITY, ByteCapError, encode, quality_scale, search_quality
from tests.hardening.conftest import bounded

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'


@st.composite
def size_curves(draw):
    """A format's quality range and a strictly increasing bytes(quality) curve: exponential in the
    format's quality scale (what encoders do) with bounded bumps, or any increasing steps."""
    fmt = draw(st.sampled_from(sorted(QUALITY)))
    lo, hi, _ = QUALITY[fmt]
    scale = quality_scale(fmt)
    if draw(st.booleans()):
        base, span = draw(st.floats(6, 11)), draw(st.floats(0.1, 5))  # bytes(hi) / bytes(lo) = e^span
        slope = span / (scale(hi) - scale(lo))
        wobble = draw(st.lists(st.floats(0, 0.05), min_size=hi - lo + 1, max_size=hi - lo + 1))
        sizes = [math.exp(base + slope * (scale(q) - scale(lo))) * (1 + w) for q, w in zip(range(lo, hi + 1), wobble)]
        sizes = np.maximum.accumulate(np.round(sizes)).astype(int) + np.arange(hi - lo + 1)
    else:
        steps = draw(st.lists(st.integers(1, 5000), min_size=hi - lo + 1, max_size=hi - lo + 1))
        sizes = np.cumsum(steps) + 100
    curve = dict(zip(range(lo, hi + 1), (int(s) for s in sizes)))
    cap = draw(st.integers(curve[lo] // 2, curve[hi] * 2))
    return fmt, lo, hi, curve, cap


@bounded(250)
@given(size_curves())
def test_search_fits_within_max_encodes_and_fails_only_when_nothing_fits(case):
    fmt, lo, hi, curve, cap = case
    calls = []

    def encode_at(q: int) -> bytes:
        calls.append(q)
        return b"x" * curve[q]

    try:
        result = search_quality(encode_at, lo, hi, cap, QUALITY[fmt][2], quality_scale(fmt))
    except ByteCapError:
        assert curve[lo] > cap, f"a fit existed (quality {lo} is {curve[lo]} bytes <= {cap}) but none was found"
        return
    assert len(result.data) <= cap and lo <= result.quality <= hi
    assert result.encodes == len(calls) <= MAX_ENCODES
    best = max(q for q, size in curve.items() if size <= cap)
    assert result.quality <= best


@bounded(24, deadline_ms=20000)
@given(fmt=st.sampled_from(["jpeg", "webp", "avif", "png"]), seed=st.integers(0, 2**32 - 1),
       side=st.sampled_from([(64, 48), (96, 96), (40, 120)]), squeeze=st.floats(0.05, 1.2))
def test_real_encodes_fit_the_cap_or_say_why(fmt, seed, side, squeeze):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (side[1] // 8, side[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(side, Image.Resampling.BICUBIC)  # smooth noise, like a render
    uncapped = len(encode(image, fmt, max_bytes=None, xmp=XMP).data)
    cap = max(200, int(uncapped * squeeze))
    try:
        result = encode(image, fmt, max_bytes=cap, xmp=XMP)
    except ByteCapError as exc:
        assert str(cap) in str(exc)
        return
    assert len(result.data) <= cap and result.encodes <= MAX_ENCODES
    with Image.open(io.BytesIO(result.data)) as decoded:
        assert decoded.size == side and "exif" not in decoded.info
