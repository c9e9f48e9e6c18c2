"""Synthetic renders in a real LocalStore, and export items that point at them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exports.stage import ExportItem
from plan.jobs import RenderJob
from store.keys import render_key
from store.local import LocalStore

ASPECT_SIZES = {"1:1": (128, 128), "9:16": (96, 160), "1.91:1": (192, 96)}


def synthetic_render(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradient + a bright disc off-centre + noise: compresses like a photo, has a subject."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([120 + 80 * np.sin(xs * 7), 90 + 60 * np.cos(ys * 5), 140 + 50 * np.sin((xs + ys) * 4)], -1)
    disc = (xs - 0.7 * width / max(width, height)) ** 2 + (ys - 0.3 * height / max(width, height)) ** 2 < 0.01
    base[disc] = (250, 240, 40)
    base += rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def make_job(aspect: str, *, asset: str = "pack-01", variant: int = 1, seed: int = 7) -> RenderJob:
    width, height = ASPECT_SIZES[aspect]
    return RenderJob(
        campaign="spring", row_key=asset, row=2, variant=variant, aspect=aspect, width=width, height=height,
        prompt=f"a bright orange backpack, {aspect}", negative_prompt="blurry", model_id="brandbatch/tiny-sd",
        model_revision="builtin-1", model_family="sd", scheduler="euler", steps=4, guidance=5.0, seed=seed,
        style="acme", style_version=2,
    )


def put_render(store: LocalStore, job: RenderJob, *, exif: bool = True) -> None:
    image = synthetic_render(job.width, job.height, seed=job.seed + job.variant)
    buffer = io.BytesIO()
    extra = {}
    if exif:  # a render carrying EXIF (camera + GPS tags): exports must not pass it on
        data = Image.Exif()
        data[0x010F] = "LeakyCam"
        data[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
        extra["exif"] = data.tobytes()
    image.save(buffer, "PNG", **extra)
    store.put(render_key(job.key), buffer.getvalue())


def make_item(store: LocalStore, placements: tuple[str, ...], *, asset: str = "pack-01", variant: int = 1,
              headline: str = "Go further", cta: str = "Shop now") -> ExportItem:
    renders = {aspect: make_job(aspect, asset=asset, variant=variant) for aspect in ASPECT_SIZES}
    for job in renders.values():
        put_render(store, job)
    return ExportItem(
        campaign="spring", asset_id=asset, row=2, variant=variant, placements=placements, renders=renders,
        qa_verdict="pass", approval_id=f"auto-{asset}-{variant}", approved_by="qa:auto", alt_text="Orange backpack",
        headline=headline, cta=cta,
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "out")
