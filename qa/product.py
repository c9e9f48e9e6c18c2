"""Product fidelity QA of packshot renders: inside the product, the render holds the packshot.

For each job with a ``product`` placement, the packshot (from the store) is placed again with
``render.product`` (the one place that says where it sits) and compared with the render:

* where the placed product is opaque, the mean CIEDE2000 (CIELAB D65) between render and
  packshot is at most the style's ``product.max_delta_e`` (default 1.0);
* the alpha edge within 1 px: every opaque pixel at least 1 px inside the product's edge matches
  the packshot within ``EDGE_DELTA_E`` (a just noticeable difference); only the 1 px ring along
  the cut-out may differ (resampling and blending with the scene).

A failure (``product_mismatch``) sends the render to review or fails it, per the style's
``product.on_fail``; a packshot that cannot be read fails closed (``product_missing``, review).
Expansions carry their master's product: the family check holds them to the master's pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plan.jobs import RenderJob
from plan.styles import Style
from qa.image import decode
from qa.verdicts import Finding
from store.base import Store
from store.keys import render_key

EDGE_DELTA_E = 2.3  # CIEDE2000 of a just noticeable difference


def product_delta_e(render: np.ndarray, layer) -> tuple[np.ndarray, np.ndarray]:
    """(CIEDE2000 per pixel, opaque mask) between a render (uint8 HxWx3) and the placed product
    (RGBA layer of the same size); the distance is 0 outside the opaque product."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    opaque = np.asarray(layer.getchannel("A")) == 255
    expected = np.asarray(layer.convert("RGB"))
    delta = np.zeros(opaque.shape, dtype=np.float64)
    if opaque.any():
        delta[opaque] = deltaE_ciede2000(rgb2lab(render[opaque][None] / 255.0)[0],
                                         rgb2lab(expected[opaque][None] / 255.0)[0])
    return delta, opaque


def check_product(job: RenderJob, render: np.ndarray, product, style: Style) -> Finding:
    """The fidelity check of one packshot render (uint8 HxWx3) against its packshot (RGBA)."""
    from scipy.ndimage import binary_erosion

    from render.product import product_layer

    layer, box = product_layer(product, job)
    delta, opaque = product_delta_e(render, layer)
    if not opaque.any():
        return Finding(review=("product_missing",), details={"product": f"no opaque product pixels at {box}"})
    mean = float(delta[opaque].mean())
    interior = binary_erosion(opaque, iterations=1)
    edge_misses = int((interior & (delta > EDGE_DELTA_E)).sum())
    scores = {"product_delta_e": mean, "product_edge_misses": float(edge_misses)}
    limit = style.product.max_delta_e if style.product else 1.0
    if mean <= limit and edge_misses == 0:
        return Finding(scores=scores)
    detail = (f"mean CIEDE2000 {mean:.2f} inside the product at {box} (at most {limit}); {edge_misses} pixels "
              f"1 px or more inside its edge differ by more than {EDGE_DELTA_E}")
    on_fail = style.product.on_fail if style.product else "review"
    return Finding(fail=("product_mismatch",) if on_fail == "reject" else (),
                   review=("product_mismatch",) if on_fail == "review" else (),
                   scores=scores, details={"product_mismatch": detail})


def product_checks(jobs: Sequence[RenderJob], store: Store, styles: Mapping[str, Style]
                   ) -> tuple[dict[str, Finding], dict[str, str]]:
    """(findings, errors) by job key for the packshot renders among ``jobs``. A packshot that is
    not in the store sends its render to review (``product_missing``)."""
    from render.product import load_packshot

    findings: dict[str, Finding] = {}
    errors: dict[str, str] = {}
    for job in jobs:
        if job.product is None:
            continue
        try:
            try:
                product = load_packshot(store, job)
            except FileNotFoundError:
                findings[job.key] = Finding(review=("product_missing",),
                                            details={"product": f"packshot {job.input_sha256} is not in the store"})
                continue
            render = np.asarray(decode(store.get(render_key(job.key))))
            findings[job.key] = check_product(job, render, product, styles[f"{job.style}@{job.style_version}"])
        except Exception as exc:  # fail closed: review
            errors[job.key] = f"{type(exc).__name__}: {exc}"[:500]
    return findings, errors
