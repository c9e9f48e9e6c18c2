"""Fit: nearest-aspect render, focal-point cover crop, exact size, upscale factor."""

from __future__ import annotations

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
