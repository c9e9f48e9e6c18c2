"""Packshots in exports: every placement's product pixels are the packshot put through the same
crop and scale as the render; a file whose product pixels differ is held for review, never made."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from exports.fit import crop_box
from exports.placements import load_placements
from exports.product import fitted_layer
from exports.stage import ExportItem, export_assets
from plan.jobs import RenderJob
from render.product import composite_product, packshot, product_box, product_layer
from store.keys import input_key, render_key
from tests.exports.conftest import make_job, synthetic_render

PLACEMENTS = ("meta.feed.square", "meta.stories", "google.display.upload.300x250")


@pytest.fixture(scope="module")
def placements():
    return load_placements()


def bottle() -> Image.Image:
    image = Image.new("RGBA", (120, 300), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((10, 50, 110, 296), radius=24, fill=(228, 87, 46, 255))
    draw.rectangle((40, 4, 80, 54), fill=(41, 51, 92, 255))
    draw.rectangle((10, 140, 110, 180), fill=(245, 241, 232, 255))
    for y in range(146, 176, 10):
        draw.rectangle((10, y, 110, y + 3), fill=(41, 51, 92, 255))
    return image


def packshot_item(store, focal=(0.5, 0.5)) -> tuple[ExportItem, RenderJob, Image.Image]:
    buf = io.BytesIO()
    bottle().save(buf, format="PNG")
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    store.put(input_key(digest), buf.getvalue())
    job = RenderJob.from_dict({**make_job("1:1").to_dict(), "input_images": [["product_image", digest]],
                               "product": [0.45, 0.55, 0.6, True]})
    product = packshot(bottle())
    layer, box = product_layer(product, job)
    pixels = composite_product(np.asarray(synthetic_render(job.width, job.height)), layer, box, shadow=True)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    store.put(render_key(job.key), out.getvalue())
    item = ExportItem(campaign="spring", asset_id="bottle-01", row=2, variant=1, placements=PLACEMENTS,
                      renders={"1:1": job}, qa_verdict="pass", approval_id="auto", approved_by="qa:auto",
                      alt_text="An orange bottle", focal=focal)
    return item, job, product


def test_every_placement_ships_the_packshot_through_the_same_crop_and_scale(store, placements) -> None:
    item, job, product = packshot_item(store)
    rows = export_assets([item], store, placements, formats=("png",), workers=1)
    assert [r["status"] for r in rows] == ["exported"] * len(PLACEMENTS), rows
    box = product_box((job.width, job.height), product.size, (0.45, 0.55), 0.6)
    for row in rows:
        exported = np.asarray(Image.open(io.BytesIO(store.get(row["path"]))).convert("RGB"))
        size = (row["width"], row["height"])
        layer = fitted_layer(product, box, crop_box((job.width, job.height), *size, item.focal), size)
        opaque = np.asarray(layer.getchannel("A")) == 255
        assert opaque.sum() > 0.05 * size[0] * size[1], row["placement"]
        assert np.array_equal(exported[opaque], np.asarray(layer.convert("RGB"))[opaque]), row["placement"]
        assert row["input_images"] == f"product_image={job.input_sha256['product_image']}"
        # and that layer is the packshot itself, scaled: against a plain resize onto the product's rectangle
        crop = crop_box((job.width, job.height), *size, item.focal)
        scale = size[0] / (crop[2] - crop[0])
        rect = [round((box[0] - crop[0]) * scale), round((box[1] - crop[1]) * scale),
                round((box[2] - crop[0]) * scale), round((box[3] - crop[1]) * scale)]
        plain = np.asarray(product.resize((rect[2] - rect[0], rect[3] - rect[1]), Image.Resampling.LANCZOS))
        inner = slice(rect[1] + 3, rect[3] - 3), slice(rect[0] + 3, rect[2] - 3)
        ours = np.asarray(layer)[inner].astype(int)
        theirs = plain[3:-3, 3:-3].astype(int)[: ours.shape[0], : ours.shape[1]]
        both = (ours[..., 3] == 255) & (theirs[..., 3] == 255)
        assert np.abs(ours[..., :3][both] - theirs[..., :3][both]).mean() < 6, row["placement"]


def test_a_file_whose_product_differs_is_held_for_review(store, placements, monkeypatch) -> None:
    item, _job, _product = packshot_item(store)
    # the render's product (a few px off), not the packshot's: the check must catch it
    monkeypatch.setattr("exports.stage.composite", lambda image, layer: image.transform(
        image.size, Image.Transform.AFFINE, (1, 0, 4, 0, 1, 0)))
    rows = export_assets([item], store, placements, formats=("png",), workers=1)
    assert [r["status"] for r in rows] == ["review"] * len(PLACEMENTS)
    assert all("product fidelity" in r["error"] and "differ from the packshot" in r["error"] for r in rows)
    assert not any(store.exists(r["path"]) for r in rows)


def test_without_a_style_focal_the_crop_centres_on_the_product(store, placements) -> None:
    item, job, product = packshot_item(store, focal=None)
    rows = export_assets([item], store, placements, formats=("png",), workers=1)
    box = product_box((job.width, job.height), product.size, (0.45, 0.55), 0.6)
    centre = ((box[0] + box[2]) / 2 / job.width, (box[1] + box[3]) / 2 / job.height)
    for row in rows:
        size = (row["width"], row["height"])
        layer = fitted_layer(product, box, crop_box((job.width, job.height), *size, centre), size)
        opaque = np.asarray(layer.getchannel("A")) == 255
        exported = np.asarray(Image.open(io.BytesIO(store.get(row["path"]))).convert("RGB"))
        assert opaque.any() and np.array_equal(exported[opaque], np.asarray(layer.convert("RGB"))[opaque])
