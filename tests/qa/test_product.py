"""Product fidelity QA: a packshot render holds the packshot's pixels; a shifted, recoloured or
missing product is caught and never passes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tests.qa.synth import make_style, png
from tests.render.jobs import make_job

from plan.jobs import RenderJob
from plan.styles import Product
from qa import run_qa
from qa.product import check_product
from render.product import composite_product, packshot, product_layer
from store.keys import input_key

SIZE = 96


def bottle() -> Image.Image:
    image = Image.new("RGBA", (40, 100), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((4, 20, 36, 98), radius=8, fill=(228, 87, 46, 255))
    draw.rectangle((14, 2, 26, 22), fill=(41, 51, 92, 255))
    draw.rectangle((4, 50, 36, 62), fill=(245, 241, 232, 255))
    return image


def packshot_job(store, on_fail: str = "review") -> tuple[RenderJob, object, Image.Image]:
    data = png(np.asarray(bottle()))
    digest = hashlib.sha256(data).hexdigest()
    store.put(input_key(digest), data)
    job = RenderJob.from_dict({**make_job(1, width=SIZE, height=SIZE).to_dict(),
                               "input_images": [["product_image", digest]], "product": [0.5, 0.55, 0.6, True]})
    style = make_style().model_copy(update={"product": Product(anchor=(0.5, 0.55), height=0.6, on_fail=on_fail)})
    return job, style, packshot(bottle())


def scene() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)


def faithful(job: RenderJob, product: Image.Image) -> np.ndarray:
    layer, box = product_layer(product, job)
    return composite_product(scene(), layer, box, shadow=True)


def test_a_composited_render_matches_its_packshot_exactly(store) -> None:
    job, style, product = packshot_job(store)
    finding = check_product(job, faithful(job, product), product, style)
    assert finding.fail == () and finding.review == ()
    assert finding.scores == {"product_delta_e": 0.0, "product_edge_misses": 0.0}


@pytest.mark.parametrize("dx,dy", [(2, 0), (0, -1), (1, 1)])
def test_a_shifted_product_is_caught(store, dx: int, dy: int) -> None:
    job, style, product = packshot_job(store)
    shifted = np.roll(faithful(job, product), (dy, dx), axis=(0, 1))
    finding = check_product(job, shifted, product, style)
    assert finding.review == ("product_mismatch",), finding
    assert finding.scores["product_edge_misses"] > 0
    assert "inside the product" in finding.details["product_mismatch"]


def test_a_small_colour_drift_fails_the_mean_delta_e(store) -> None:
    job, style, product = packshot_job(store)
    drifted = faithful(job, product).astype(np.int16)
    layer, _ = product_layer(product, job)
    opaque = np.asarray(layer.getchannel("A")) == 255
    drifted[opaque] += np.array([3, -2, 0], dtype=np.int16)  # ~1.5-2 CIEDE2000: above 1.0 mean
    finding = check_product(job, drifted.clip(0, 255).astype(np.uint8), product, style)
    assert finding.review == ("product_mismatch",)
    assert 1.0 < finding.scores["product_delta_e"] < 5.0


def test_the_run_fails_closed_per_the_style(store, put_render) -> None:
    job, review_style, product = packshot_job(store)
    _, reject_style, _ = packshot_job(store, on_fail="reject")
    put_render(job, np.roll(faithful(job, product), 3, axis=1))
    result = run_qa([job], store, {review_style.ref: review_style})[0]
    assert result.verdict == "review" and "product_mismatch" in result.reasons
    result = run_qa([job], store, {reject_style.ref: reject_style})[0]
    assert result.verdict == "fail" and "product_mismatch" in result.reasons
    put_render(job, faithful(job, product))
    assert run_qa([job], store, {review_style.ref: review_style})[0].verdict == "pass"


def test_a_missing_packshot_sends_the_render_to_review(store, put_render) -> None:
    job, style, product = packshot_job(store)
    put_render(job, faithful(job, product))
    store.delete(input_key(job.input_sha256["product_image"]))
    result = run_qa([job], store, {style.ref: style})[0]
    assert result.verdict == "review" and "product_missing" in result.reasons


def test_a_rerun_keeps_the_comparison_of_the_same_render_bytes_only(store, put_render) -> None:
    """The comparison is kept with the sha256 of the render it compared (the packshot is in the
    job key): a rerun over the same bytes does not read the packshot again, other bytes under the
    same key are compared again, and a packshot missing from the store is looked for again."""
    job, style, product = packshot_job(store)
    styles = {style.ref: style}
    packshot_key = input_key(job.input_sha256["product_image"])
    put_render(job, np.roll(faithful(job, product), 3, axis=1))
    first = run_qa([job], store, styles)[0]
    assert "product_mismatch" in first.reasons
    packshot_bytes = store.get(packshot_key)
    store.delete(packshot_key)
    assert run_qa([job], store, styles)[0].to_json() == first.to_json()  # kept: no packshot needed
    put_render(job, faithful(job, product))  # other bytes under the same key
    missing = run_qa([job], store, styles)[0]
    assert missing.verdict == "review" and "product_missing" in missing.reasons
    store.put(packshot_key, packshot_bytes)
    assert run_qa([job], store, styles)[0].verdict == "pass"  # the missing packshot was looked for again
    store.delete(packshot_key)
    assert run_qa([job], store, styles)[0].verdict == "pass"  # and that comparison is kept
