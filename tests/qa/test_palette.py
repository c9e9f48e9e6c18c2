"""Brand palette adherence: CIEDE2000 share of pixels near a brand colour."""

from __future__ import annotations

import numpy as np
from PIL import Image
from tests.qa.synth import make_job, make_style, noise, scene, solid

from qa.image import RenderImage
from qa.palette import hex_to_rgb, nearest_delta_e, palette

ACME = ("#E4572E", "#29335C", "#F3A712", "#F5F1E8")


def on_palette(colours: tuple[str, ...] = ACME, jitter: float = 6.0) -> np.ndarray:
    """Stripes of the brand colours with a little noise, as a palette-true render."""
    rgb = hex_to_rgb(colours) * 255
    stripes = (np.indices((128, 128)).sum(axis=0) // 32) % len(colours)
    return np.clip(rgb[stripes] + np.random.default_rng(0).normal(0, jitter, (128, 128, 3)), 0, 255).astype(np.uint8)


def check(pixels: np.ndarray, **qa: object):
    return palette(RenderImage(Image.fromarray(pixels)), make_job(), make_style(palette=ACME, **qa))


def test_palette_true_image_passes_with_full_share_and_names_its_dominant_colours():
    finding = check(on_palette(), palette_min_share=0.6)
    assert finding.fail == () and finding.review == ()
    assert finding.scores["palette_share"] > 0.95  # stripe edges blend when downsampled
    assert "#29335C" in finding.details["dominant_colours"]


def test_off_palette_image_fails():
    finding = check(solid((30, 160, 60)), palette_min_share=0.6)
    assert finding.fail == ("off_palette",) and finding.scores["palette_share"] == 0.0
    assert finding.details["dominant_colours"].startswith("#1EA03C 100% dE ")


def test_share_in_the_uncertainty_band_goes_to_review():
    half = on_palette()
    half[:, 64:] = (30, 160, 60)  # half brand colours, half green
    finding = check(half, palette_min_share=0.5, palette_uncertainty=0.05)
    assert 0.45 <= finding.scores["palette_share"] < 0.55
    assert finding.review == ("palette_uncertain",) and finding.fail == ()


def test_gate_is_off_at_zero_share_and_without_a_palette():
    assert check(noise(), palette_min_share=0.0).fail == ()
    assert "palette_share" in check(noise(), palette_min_share=0.0).scores
    assert palette(RenderImage(Image.fromarray(scene())), make_job(), make_style(palette_min_share=0.9)).scores == {}


def test_delta_e_tolerance_comes_from_the_style():
    shifted = np.clip(on_palette(jitter=0).astype(np.int16) + 18, 0, 255).astype(np.uint8)
    assert check(shifted, palette_min_share=0.9, palette_delta_e=20.0).fail == ()
    assert check(shifted, palette_min_share=0.9, palette_delta_e=2.0).fail == ("off_palette",)


def test_ciede2000_matches_sharma_reference_pair():
    # Sharma, Wu & Dalal (2005), pair 1: L*a*b* (50, 2.6772, -79.7751) vs (50, 0, -82.7485): dE00 = 2.0425
    delta, index = nearest_delta_e(np.array([[50.0, 2.6772, -79.7751]]), np.array([[50.0, 0.0, -82.7485]]))
    assert abs(float(delta[0]) - 2.0425) < 1e-4 and int(index[0]) == 0
