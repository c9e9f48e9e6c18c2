"""Packshots: the brand's real product in a render, pixel for pixel (numpy + PIL only).

A row's ``product_image`` (alpha cut-out, or ``product_mask``) is cropped to its opaque part and
placed by the job's ``product`` (anchor = the product's centre as 0..1 of the canvas, height =
share of the canvas height; ``product_box`` is the one place that says where it sits: render, QA
and exports all use it). The inpainting pipeline paints everything outside the product (mask
feathered ``FEATHER`` of the product's height into the surroundings), an optional contact shadow
darkens the ground under it, then the placed packshot is alpha-composited back: where it is
opaque the render holds the packshot's pixels exactly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from plan.jobs import RenderJob
from plan.uploads import decode_image
from store.base import Store
from store.keys import input_key

FEATHER = 1 / 32  # of the product's height: blur of the inpainting mask's edge
SHADOW_STRENGTH = 0.45  # how much the contact shadow darkens the ground at its centre (0..1)
BACKGROUND = (128, 128, 128)  # the canvas outside the product before inpainting


def packshot(image: Image.Image, mask: Image.Image | None = None) -> Image.Image:
    """The product as RGBA cropped to its visible part; ``mask`` (L or any mode, white = product)
    replaces the image's alpha."""
    rgba = image.convert("RGBA")
    if mask is not None:
        rgba.putalpha(mask.convert("L"))
    box = rgba.getchannel("A").getbbox()
    if box is None:
        raise ValueError("the packshot is fully transparent: nothing to place")
    return rgba.crop(box)


def load_packshot(store: Store, job: RenderJob) -> Image.Image:
    """The job's packshot from the store (``inputs/<sha256>``, written at planning), decoded
    under the upload rules again. ``FileNotFoundError`` when it is not there."""
    inputs = job.input_sha256
    image = decode_image(f"product_image {inputs['product_image'][:12]}",
                         store.get(input_key(inputs["product_image"])))
    mask = None
    if "product_mask" in inputs:
        mask = decode_image(f"product_mask {inputs['product_mask'][:12]}", store.get(input_key(inputs["product_mask"])))
    return packshot(image, mask)


def product_box(size: tuple[int, int], product_size: tuple[int, int], anchor: tuple[float, float],
                height: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the product on a canvas of ``size``: ``height`` of the canvas
    tall (narrowed to fit the canvas width), aspect kept, centred on ``anchor`` as far as the
    canvas edges allow."""
    width, canvas_h = size
    pw, ph = product_size
    th = max(1, round(height * canvas_h))
    tw = max(1, round(pw * th / ph))
    if tw > width:
        tw, th = width, max(1, round(ph * width / pw))
    left = min(max(round(anchor[0] * width - tw / 2), 0), width - tw)
    top = min(max(round(anchor[1] * canvas_h - th / 2), 0), canvas_h - th)
    return left, top, left + tw, top + th


def scaled(product: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float] | None = None
           ) -> Image.Image:
    """``product`` (RGBA) resampled to ``size`` with Lanczos on premultiplied alpha (no dark
    fringes); ``box``: the source region, as Pillow's ``resize`` takes it."""
    return product.convert("RGBa").resize(size, Image.Resampling.LANCZOS, box=box).convert("RGBA")


def product_layer(product: Image.Image, job: RenderJob) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """(RGBA layer of the job's size holding the placed product, its box)."""
    x, y, height, _shadow = job.product
    box = product_box((job.width, job.height), product.size, (x, y), height)
    layer = Image.new("RGBA", (job.width, job.height), (0, 0, 0, 0))
    layer.paste(scaled(product, (box[2] - box[0], box[3] - box[1])), box[:2])
    return layer, box


def inpaint_inputs(layer: Image.Image, box: tuple[int, int, int, int]) -> tuple[Image.Image, Image.Image]:
    """(canvas, mask) for the inpainting pipeline: the product on a neutral canvas, and a mask
    (L, 255 = paint) of everything outside it, feathered into the surroundings."""
    canvas = Image.new("RGBA", layer.size, (*BACKGROUND, 255))
    canvas.alpha_composite(layer)
    radius = max(1.0, (box[3] - box[1]) * FEATHER)
    paint = Image.eval(layer.getchannel("A"), lambda a: 255 - a)
    # reaching ``radius`` into the product's edge lets the model blend across it; the product's
    # pixels are composited back afterwards, so nothing of it is lost
    mask = paint.filter(ImageFilter.MaxFilter(2 * int(radius) + 1)).filter(ImageFilter.GaussianBlur(radius))
    return canvas.convert("RGB"), mask


def contact_shadow(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Float HxW in 0..1: how much each pixel is darkened by a soft ellipse under the product."""
    left, top, right, bottom = box
    shadow = Image.new("L", size, 0)
    half_w, half_h = (right - left) * 0.45, max(1.0, (bottom - top) * 0.06)
    centre_x = (left + right) / 2
    ImageDraw.Draw(shadow).ellipse((centre_x - half_w, bottom - half_h, centre_x + half_w, bottom + half_h), fill=255)
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1.0, half_h)))
    return np.asarray(shadow, dtype=np.float64) / 255.0 * SHADOW_STRENGTH


def composite_product(pixels: np.ndarray, layer: Image.Image, box: tuple[int, int, int, int],
                      shadow: bool) -> np.ndarray:
    """The decoded render (uint8 HxWx3) with the contact shadow (if ``shadow``) and the product
    alpha-composited over it: where the product is opaque, its pixels exactly."""
    out = np.asarray(pixels, dtype=np.uint8)
    if shadow:
        dark = 1.0 - contact_shadow(layer.size, box)
        out = np.clip(np.round(out.astype(np.float64) * dark[..., None]), 0, 255).astype(np.uint8)
    base = Image.fromarray(out, mode="RGB").convert("RGBA")
    base.alpha_composite(layer)
    return np.asarray(base.convert("RGB"))
