"""Fit: nearest-aspect render, focal-point cover crop, exact size, upscale factor."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from exports.fit import cover_fit, crop_box, focal_point, nearest_render, upscale_factor
from exports.placements import load_placements
from tests.exports.conftest import ASPECT_SIZES, make_job


@pytest.fixture(scope="module")
def placements():
    return load_placements()


def test_nearest_aspect_render_is_chosen(placements):
    renders = {aspect: make_job(aspect) for aspect in ASPECT_SIZES}
    assert nearest_render(renders, placements["meta.stories"]).aspect == "9:16"
    assert nearest_render(renders, placements["google.display.upload.728x90"]).aspect == "1.91:1"
    assert nearest_render(renders, placements["google.display.upload.300x250"]).aspect == "1:1"
    assert nearest_render(dict(reversed(renders.items())), placements["meta.feed.portrait"]).aspect == "1:1"


@pytest.mark.parametrize("where", [(0.15, 0.5), (0.85, 0.5), (0.5, 0.2), (0.5, 0.8)])
def test_focal_point_follows_the_subject(where):
    image = Image.new("RGB", (200, 200), (40, 60, 90))
    cx, cy = where[0] * 200, where[1] * 200
    ImageDraw.Draw(image).ellipse((cx - 15, cy - 15, cx + 15, cy + 15), fill=(250, 230, 30))
    fx, fy = focal_point(image)
    assert abs(fx - where[0]) < 0.1 and abs(fy - where[1]) < 0.1
    assert focal_point(Image.new("RGB", (50, 80), "white")) == (0.5, 0.5)


def test_cover_crop_keeps_the_subject_and_the_exact_size():
    image = Image.new("RGB", (400, 200), (40, 60, 90))
    ImageDraw.Draw(image).ellipse((320, 80, 360, 120), fill=(250, 230, 30))
    focal = focal_point(image)
    fitted = cover_fit(image, 150, 150, focal)
    assert fitted.size == (150, 150)
    left, top, right, bottom = crop_box(image.size, 150, 150, focal)
    assert (top, bottom) == (0.0, 200.0) and left <= 320 and right >= 360 and right <= 400
    centred = cover_fit(image, 150, 150)
    assert np.asarray(fitted)[..., 0].max() > 200 > np.asarray(centred)[..., 0].max()  # centre crop loses it


def test_crop_box_stays_inside_the_image():
    for focal in [(0.0, 0.0), (1.0, 1.0), (0.5, 0.5)]:
        left, top, right, bottom = crop_box((300, 100), 100, 100, focal)
        assert 0 <= left and right <= 300 and 0 <= top and bottom <= 100
        assert right - left == pytest.approx(100) and bottom - top == pytest.approx(100)


def test_upscale_factor():
    assert upscale_factor((128, 128), 1080, 1080) == pytest.approx(8.4375)
    assert upscale_factor((1024, 1024), 300, 250) < 1


# Focal points at and next to the edges, and the centre.
_EDGE_FOCALS = (0.0, 1e-9, 0.5, 1 - 1e-9, 1.0)


def _buckets() -> list[tuple[str, str, int | None, tuple[int, int]]]:
    from typing import get_args

    from plan.resolution import FAMILY_NATIVE, bucket
    from plan.styles import Style

    aspects = get_args(get_args(Style.model_fields["aspect_ratios"].annotation)[0])
    return [(family, aspect, resolution, bucket(aspect, family, resolution))
            for family in FAMILY_NATIVE for aspect in aspects for resolution in (None, 128, 768)]


def test_every_bucket_of_every_family_crops_to_every_placement(placements):
    """Issue 16: float rounding put a box edge at -1.4e-14 (or past the far edge), which
    Pillow refuses ("box offset can't be negative"): every bucket x placement x edge focal."""
    buckets = _buckets()
    assert len(buckets) >= 4 * 7 * 3
    sources: dict[tuple[int, int], Image.Image] = {}
    bad = []
    for family, aspect, resolution, size in buckets:
        source = sources.setdefault(size, Image.new("L", size))
        for placement in placements.values():
            for focal in itertools.product(_EDGE_FOCALS, repeat=2):
                left, top, right, bottom = box = crop_box(size, placement.width, placement.height, focal)
                inside = 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
                if not inside or abs((right - left) / (bottom - top) / placement.aspect - 1) > 1e-9:
                    bad.append(f"{family} {aspect}@{resolution} {size} -> {placement.id} focal {focal}: {box}")
                # Pillow's own checks of the box (they do not depend on the output size)
                source.resize((1, 1), Image.Resampling.NEAREST, box=box)
    assert not bad, f"{len(bad)} boxes outside the source or off the aspect, e.g. {bad[:3]}"


@pytest.mark.parametrize("size, width, height", [((1472, 768), 414, 125), ((912, 1136), 320, 50),
                                                 ((1248, 832), 300, 250), ((896, 1152), 728, 90)])
def test_cover_fit_of_a_rounding_case_gives_the_exact_size(size, width, height):
    for focal in [(0.0, 0.0), (1.0, 1.0)]:
        assert cover_fit(Image.new("RGB", size), width, height, focal).size == (width, height)
