"""Packshot renders on the tiny models, offline: the scene is inpainted around the product, the
product's pixels come back exactly, expansions carry it, and a changed packshot rerenders only
the jobs that use it."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tests.qa.synth import make_style
from tests.render.jobs import make_family, make_job

from exports.product import source_box
from plan.jobs import RenderJob, derive_expand_seed
from plan.styles import Product
from qa import run_qa
from qa.product import check_product
from render.product import BACKGROUND, load_packshot, product_layer
from render.stage import render_missing
from store.keys import input_key, render_key
from store.local import LocalStore


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "out")


def bottle(colour=(228, 87, 46)) -> bytes:
    image = Image.new("RGBA", (30, 80), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((3, 14, 27, 78), radius=6, fill=(*colour, 255))
    draw.rectangle((10, 1, 20, 16), fill=(41, 51, 92, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def with_packshot(store, job: RenderJob, data: bytes, **fields) -> RenderJob:
    digest = hashlib.sha256(data).hexdigest()
    store.put(input_key(digest), data, overwrite=True)
    return RenderJob.from_dict({**job.to_dict(), "input_images": [["product_image", digest]],
                                "product": [0.5, 0.55, 0.6, True], **fields})


def decoded(store, job: RenderJob) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(store.get(render_key(job.key)))).convert("RGB"))


@pytest.mark.parametrize("model", ["brandbatch/tiny-sd", "brandbatch/tiny-sd-inpaint"])
def test_the_scene_is_painted_around_the_exact_product(store, model: str) -> None:
    job = with_packshot(store, make_job(1, model_id=model, steps=2), bottle())
    report = render_missing([job], store, device="cpu")
    assert report.failed == [] and report.rendered == [job.key]
    pixels = decoded(store, job)
    product = load_packshot(store, job)
    style = make_style().model_copy(update={"product": Product()})
    finding = check_product(job, pixels, product, style)
    assert finding.scores["product_delta_e"] == 0.0 and finding.review == () and finding.fail == ()
    layer, _ = product_layer(product, job)
    outside = np.asarray(layer.getchannel("A")) == 0
    assert np.abs(pixels[outside].astype(int) - BACKGROUND).mean() > 5  # the model painted the scene


def test_an_expansion_carries_its_masters_product(store) -> None:
    master, expansion = make_family(2, "sd", expand_model="brandbatch/tiny-sd-inpaint", aspects=("9:16",))
    master = with_packshot(store, master, bottle(), model_id="brandbatch/tiny-sd-inpaint")
    expansion = RenderJob.from_dict({**expansion.to_dict(), "master_key": master.key,
                                     "seed": derive_expand_seed(master.key, "9:16"),
                                     "input_images": [list(p) for p in master.input_images]})
    report = render_missing([master, expansion], store, device="cpu")
    assert report.failed == []
    product = load_packshot(store, master)
    layer, _ = product_layer(product, master)
    left, top, right, bottom = source_box(expansion, {"1:1": master, "9:16": expansion}, product, store)
    inner = source_box(master, {"1:1": master}, product, store)
    assert (right - left, bottom - top) == (inner[2] - inner[0], inner[3] - inner[1])
    region = decoded(store, expansion)[top:bottom, left:right]
    expected = np.asarray(layer.convert("RGB"))[inner[1]:inner[3], inner[0]:inner[2]]
    opaque = np.asarray(layer.getchannel("A"))[inner[1]:inner[3], inner[0]:inner[2]] == 255
    assert opaque.sum() > 100 and np.array_equal(region[opaque], expected[opaque])
    style = make_style().model_copy(update={"product": Product(), "aspect_ratios": ("1:1", "9:16")})
    results = run_qa([master, expansion], store, {style.ref: style})
    assert [r.verdict for r in results] == ["pass", "pass"], results


def test_a_missing_packshot_fails_its_job_only(store) -> None:
    good = with_packshot(store, make_job(3, steps=2), bottle())
    lost = with_packshot(store, make_job(4, steps=2), bottle((10, 120, 200)))
    store.delete(input_key(lost.input_sha256["product_image"]))
    report = render_missing([good, lost], store, device="cpu")
    assert report.rendered == [good.key]
    assert [(f.job_key, f.reason) for f in report.failed] == [(lost.key, "input_missing")]


def test_changing_one_packshot_rerenders_only_its_jobs(store) -> None:
    first = with_packshot(store, make_job(5, steps=2), bottle())
    second = with_packshot(store, make_job(6, steps=2), bottle((41, 51, 92)))
    plain = make_job(7, steps=2)
    assert render_missing([first, second, plain], store, device="cpu").failed == []
    changed = with_packshot(store, make_job(5, steps=2), bottle((243, 167, 18)))
    report = render_missing([changed, second, plain], store, device="cpu")
    assert report.rendered == [changed.key]
    assert sorted(report.cached) == sorted([second.key, plain.key])


def test_a_mask_cuts_out_an_opaque_packshot(store) -> None:
    from render.product import packshot

    photo = Image.new("RGB", (40, 60), (200, 200, 200))
    ImageDraw.Draw(photo).ellipse((10, 5, 30, 55), fill=(228, 87, 46))
    mask = Image.new("L", (40, 60), 0)
    ImageDraw.Draw(mask).ellipse((10, 5, 30, 55), fill=255)
    cut = packshot(photo, mask)
    assert cut.size == (21, 51)  # cropped to the mask's visible part
    assert np.array_equal(np.asarray(cut.getchannel("A")), np.asarray(mask.crop((10, 5, 31, 56))))
    data = {}
    for name, image in (("product_image", photo), ("product_mask", mask)):
        buf = io.BytesIO()
        image.save(buf, format="JPEG" if name == "product_image" else "PNG")
        data[name] = buf.getvalue()
        store.put(input_key(hashlib.sha256(data[name]).hexdigest()), data[name])
    job = RenderJob.from_dict({**make_job(8).to_dict(), "product": [0.5, 0.5, 0.5, False], "input_images": [
        [name, hashlib.sha256(blob).hexdigest()] for name, blob in sorted(data.items())]})
    loaded = load_packshot(store, job)
    assert loaded.size == (21, 51) and np.array_equal(np.asarray(loaded.getchannel("A")),
                                                     np.asarray(mask.crop((10, 5, 31, 56))))
