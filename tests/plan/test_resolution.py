from __future__ import annotations

import math

import pytest

from plan.resolution import FAMILY_NATIVE, bucket, nearest_aspect
from plan.styles import ASPECT_RATIOS


@pytest.mark.parametrize("family", sorted(FAMILY_NATIVE))
@pytest.mark.parametrize("aspect", ASPECT_RATIOS)
def test_buckets_sit_on_the_family_grid_near_native_pixels(family, aspect):
    native, multiple = FAMILY_NATIVE[family]
    w, h = bucket(aspect, family)
    assert w % multiple == 0 and h % multiple == 0
    assert abs(math.log(w * h / native**2)) < 0.2
    a, b = aspect.split(":")
    assert abs(math.log((w / h) / (float(a) / float(b)))) < 0.1


def test_known_sdxl_buckets():
    assert bucket("1:1", "sdxl") == (1024, 1024)
    assert bucket("9:16", "sdxl") == (768, 1344)
    assert bucket("16:9", "sdxl") == (1344, 768)
    assert bucket("4:5", "sdxl") == (896, 1152)


def test_tiny_resolutions_use_a_16px_grid():
    w, h = bucket("9:16", "sd", 128)
    assert (w % 16, h % 16) == (0, 0) and h > w


def test_nearest_aspect():
    assert nearest_aspect(1080, 1920, ("1:1", "9:16")) == "9:16"
    assert nearest_aspect(300, 250, ("1:1", "4:5", "1.91:1")) == "1:1"
    assert nearest_aspect(1200, 628, ("1:1", "1.91:1")) == "1.91:1"
