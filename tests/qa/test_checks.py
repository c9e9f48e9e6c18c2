"""Technical checks on synthetic images: each passes and fails as it should."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from tests.qa.synth import make_job, make_style, noise, scene, solid

from qa.checks import TECHNICAL_CHECKS, blank, contrast, dimensions, exposure, laplacian_variance, nan_artifact, sharpness
from qa.image import RenderImage


def render(pixels: np.ndarray) -> RenderImage:
    return RenderImage(Image.fromarray(pixels))


def all_fails(pixels: np.ndarray, **qa: object) -> set[str]:
    job, style = make_job(width=pixels.shape[1], height=pixels.shape[0]), make_style(**qa)
    return {r for check in TECHNICAL_CHECKS.values() for r in check(render(pixels), job, style).fail}


@pytest.mark.parametrize("pixels", [scene(), noise()], ids=["scene", "noise"])
def test_real_looking_and_noise_renders_pass_every_technical_check(pixels):
    assert all_fails(pixels) == set()


def test_dimensions_must_match_the_job_exactly():
    style = make_style()
    assert dimensions(render(scene(128, 128)), make_job(width=128, height=128), style).fail == ()
    finding = dimensions(render(scene(128, 96)), make_job(width=128, height=128), style)
    assert finding.fail == ("wrong_size",)
    assert finding.details["size"] == "128x96, expected 128x128"


def test_black_image_is_blank_near_black_and_a_nan_artifact():
    assert {"blank", "near_black", "nan_artifact"} <= all_fails(solid((0, 0, 0)))


@pytest.mark.parametrize("rgb", [(128, 128, 128), (250, 250, 250), (200, 30, 30)])
def test_uniform_colour_is_blank(rgb):
    assert blank(render(solid(rgb)), make_job(), make_style()).fail == ("blank",)


def test_dark_but_detailed_image_is_near_black_not_blank():
    dark = (scene() // 12).astype(np.uint8)
    assert blank(render(dark), make_job(), make_style()).fail == ("near_black",)


def test_nan_patch_of_exact_black_fails_and_the_threshold_comes_from_the_style():
    pixels = scene()
    pixels[:48, :] = 0  # 37.5 % exact black, as NaN latents decode
    assert nan_artifact(render(pixels), make_job(), make_style()).fail == ("nan_artifact",)
    assert nan_artifact(render(pixels), make_job(), make_style(max_exact_black_share=0.5)).fail == ()
    assert nan_artifact(render(scene()), make_job(), make_style()).scores["exact_black_share"] == 0.0


def test_blown_highlights_and_crushed_shadows():
    over, under = scene(), scene()
    over[:80] = 255
    under[:80] = 0
    assert exposure(render(over), make_job(), make_style()).fail == ("overexposed",)
    assert exposure(render(under), make_job(), make_style()).fail == ("underexposed",)
    assert exposure(render(over), make_job(), make_style(max_clipped_share=0.7)).fail == ()
    assert exposure(render(scene()), make_job(), make_style()).fail == ()


def test_low_contrast_image_fails_but_a_blank_one_is_left_to_blank():
    pixels = scene().astype(np.float64)
    flat = (120 + (pixels - pixels.mean()) * 0.1).round().astype(np.uint8)  # luma std about 3
    finding = contrast(render(flat), make_job(), make_style())
    assert finding.fail == ("low_contrast",) and 2.0 <= finding.scores["contrast"] < 4.0
    assert contrast(render(scene()), make_job(), make_style()).fail == ()
    assert contrast(render(solid((90, 90, 90))), make_job(), make_style()).fail == ()


def test_blurred_image_fails_sharpness_gate_set_by_the_style():
    sharp = scene()
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(4)))
    style = make_style(min_sharpness=20.0)
    s_sharp = sharpness(render(sharp), make_job(), style)
    s_blur = sharpness(render(blurred), make_job(), style)
    assert s_sharp.fail == () and s_sharp.scores["sharpness"] > 20.0
    assert s_blur.fail == ("blurry",) and s_blur.scores["sharpness"] < 20.0
    assert sharpness(render(blurred), make_job(), make_style(min_sharpness=0.0)).fail == ()


def test_laplacian_variance_of_a_linear_ramp_is_zero_and_of_a_checkerboard_is_large():
    ramp = np.tile(np.arange(32, dtype=np.float32), (32, 1))
    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.float32)
    assert laplacian_variance(ramp) == 0.0
    assert laplacian_variance(checker) > 1e5
    assert laplacian_variance(np.zeros((2, 2), np.float32)) == 0.0
