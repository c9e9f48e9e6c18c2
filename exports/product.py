"""Packshots in exports: the product is composited again from the full-resolution packshot,
through the same crop and scale as the render it sits in, so the shipped product is the
brand's pixels (not the render's resampled, or model-upscaled, copy of them), and then checked.

``source_box`` says where the product sits in a render (a master or independent render by its
job's ``product`` placement, an expansion by its master's plus where the master sits on its
canvas). ``fitted_layer`` is the packshot put through the crop/scale of ``exports.fit.cover_fit``
(Lanczos on premultiplied alpha, the same source box); ``product_problem`` says where the
fitted image's opaque product pixels are not exactly that layer's.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from plan.jobs import RenderJob
from render.expand import master_box
from render.product import load_packshot, product_box, scaled
from store.base import Store
from store.keys import render_key


def source_box(job: RenderJob, renders: Mapping[str, RenderJob], product: Image.Image,
               store: Store) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the product in the job's render. Raises ``ValueError``."""
    if job.product is not None:
        return product_box((job.width, job.height), product.size, job.product[:2], job.product[2])
    master = next((j for j in renders.values() if j.key == job.master_key and j.product is not None), None)
    if master is None:
        raise ValueError(f"the expansion {job.key[:12]} ({job.aspect}) has no packshot master among the asset's "
                         "renders, so where its product sits is unknown")
    inner = product_box((master.width, master.height), product.size, master.product[:2], master.product[2])
    try:
        with Image.open(io.BytesIO(store.get(render_key(master.key)))) as opened:
            left, top, _, _ = master_box(opened.convert("RGB"), job)
    except FileNotFoundError:
        raise ValueError(f"master render {render_key(master.key)} is not in the store") from None
    return inner[0] + left, inner[1] + top, inner[2] + left, inner[3] + top


def read_product(job: RenderJob, renders: Mapping[str, RenderJob], store: Store
                 ) -> tuple[Image.Image, tuple[int, int, int, int]] | None:
    """(packshot RGBA, its box in the job's render), or None for a render without one.
    Raises ``ValueError`` when the packshot or its master cannot be read."""
    if "product_image" not in job.input_sha256:
        return None
    try:
        product = load_packshot(store, job)
    except FileNotFoundError:
        raise ValueError(f"the packshot {job.input_sha256['product_image'][:12]} of {job.row_key} is not in "
                         "the store") from None
    return product, source_box(job, renders, product, store)


def fitted_layer(product: Image.Image, box: tuple[float, float, float, float], crop: tuple[float, float, float, float],
                 size: tuple[int, int]) -> Image.Image:
    """RGBA layer of ``size``: the product, placed at ``box`` in a source image, put through the
    cover fit that resamples the source region ``crop`` to ``size``."""
    width, height = size
    cl, ct, cr, cb = crop
    sx, sy = (cr - cl) / width, (cb - ct) / height  # source pixels per output pixel
    pl, pt, pr, pb = box
    x0, x1 = max(0, math.floor((pl - cl) / sx)), min(width, math.ceil((pr - cl) / sx))
    y0, y1 = max(0, math.floor((pt - ct) / sy)), min(height, math.ceil((pb - ct) / sy))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    if x1 <= x0 or y1 <= y0:
        return layer  # cropped out
    ku, kv = product.width / (pr - pl), product.height / (pb - pt)  # packshot pixels per source pixel
    u0, u1 = (cl + x0 * sx - pl) * ku, (cl + x1 * sx - pl) * ku
    v0, v1 = (ct + y0 * sy - pt) * kv, (ct + y1 * sy - pt) * kv
    pad = math.ceil(max(0.0, -u0, -v0, u1 - product.width, v1 - product.height)) + 1
    padded = Image.new("RGBA", (product.width + 2 * pad, product.height + 2 * pad), (0, 0, 0, 0))
    padded.paste(product, (pad, pad))
    layer.paste(scaled(padded, (x1 - x0, y1 - y0), (u0 + pad, v0 + pad, u1 + pad, v1 + pad)), (x0, y0))
    return layer


def composite(image: Image.Image, layer: Image.Image) -> Image.Image:
    """``image`` (RGB) with ``layer`` alpha-composited over it."""
    out = image.convert("RGBA")
    out.alpha_composite(layer)
    return out.convert("RGB")


def product_problem(image: Image.Image, layer: Image.Image) -> str:
    """Why the opaque product pixels of ``layer`` are not exactly those of ``image`` ('' if they are)."""
    opaque = np.asarray(layer.getchannel("A")) == 255
    differ = int(np.any(np.asarray(image.convert("RGB"))[opaque] != np.asarray(layer.convert("RGB"))[opaque],
                        axis=-1).sum())
    return f"{differ} of {int(opaque.sum())} product pixels differ from the packshot" if differ else ""
