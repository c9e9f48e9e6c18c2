"""Brand palette adherence: CIEDE2000 between the render's pixels and the style's palette.

``palette_share`` is the share of pixels (of a copy at most 64 px on the longer side) whose
colour lies within ``palette_delta_e`` (CIEDE2000, CIELAB D65) of some brand colour. The
render's dominant colours (k-means in Lab) go into the details so a designer sees why.
Colour science comes from scikit-image (``skimage.color``); k-means from scipy.
"""

from __future__ import annotations

import warnings

import numpy as np

from plan.jobs import RenderJob
from plan.styles import Style
from qa.image import RenderImage
from qa.verdicts import Finding, band

DOMINANT_COLOURS = 5
KMEANS_SEED = 0


def hex_to_rgb(colours: tuple[str, ...]) -> np.ndarray:
    """('#RRGGBB', ...) -> (K, 3) float64 in [0, 1]."""
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=np.float64) / 255.0


def rgb_to_hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(v) * 255)) for v in np.clip(rgb, 0.0, 1.0))
    return f"#{r:02X}{g:02X}{b:02X}"


def nearest_delta_e(lab: np.ndarray, palette_lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each Lab colour (N, 3): CIEDE2000 to the nearest palette colour and its index."""
    from skimage.color import deltaE_ciede2000

    distances = deltaE_ciede2000(lab[:, None, :], palette_lab[None, :, :])  # (N, K)
    return distances.min(axis=1), distances.argmin(axis=1)


def dominant_colours(lab: np.ndarray, k: int = DOMINANT_COLOURS) -> list[tuple[np.ndarray, float]]:
    """The k-means centres (Lab) of the pixels with their pixel shares, largest first."""
    from scipy.cluster.vq import kmeans2

    k = min(k, len(np.unique(lab.round(2), axis=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty cluster is dropped below
        centres, labels = kmeans2(lab, k, minit="++", seed=KMEANS_SEED)
    shares = np.bincount(labels, minlength=len(centres)) / len(labels)
    order = sorted(range(len(centres)), key=lambda i: (-shares[i], i))
    return [(centres[i], float(shares[i])) for i in order if shares[i] > 0]


def palette(img: RenderImage, job: RenderJob, style: Style) -> Finding:
    """Share of pixels near a brand colour, gated by ``palette_min_share`` (0 turns the gate off)
    with ``palette_uncertainty`` as the review band. No palette in the style: nothing to check."""
    if not style.palette:
        return Finding()
    from skimage.color import lab2rgb, rgb2lab

    t = style.qa
    lab = rgb2lab(img.palette_rgb)
    palette_lab = rgb2lab(hex_to_rgb(style.palette))
    delta, _ = nearest_delta_e(lab, palette_lab)
    share = float((delta <= t.palette_delta_e).mean())
    described = []
    for centre, part in dominant_colours(lab):
        d, idx = nearest_delta_e(centre[None, :], palette_lab)
        described.append(f"{rgb_to_hex(lab2rgb(centre))} {part:.0%} dE {float(d[0]):.1f} to {style.palette[int(idx[0])]}")
    details = {"dominant_colours": "; ".join(described)}
    outcome = band(share, t.palette_min_share, t.palette_uncertainty) if t.palette_min_share > 0 else "pass"
    return Finding(fail=("off_palette",) if outcome == "fail" else (),
                   review=("palette_uncertain",) if outcome == "uncertain" else (),
                   scores={"palette_share": share}, details=details)
