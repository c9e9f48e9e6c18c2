"""Small synthetic renders, jobs and styles for the QA tests (no models)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from plan.jobs import RenderJob
from plan.styles import Style

SIZE = 128


def make_job(row_key: str = "asset-01", variant: int = 1, aspect: str = "1:1", width: int = SIZE,
             height: int = SIZE, style: str = "acme", style_version: int = 2, reroll: int = 0) -> RenderJob:
    return RenderJob(
        campaign="spring", row_key=row_key, row=2, variant=variant, aspect=aspect, width=width, height=height,
        prompt=f"a photo of {row_key}", negative_prompt="blurry", model_id="brandbatch/tiny-sd",
        model_revision="builtin-1", model_family="sd", scheduler="euler", steps=2, guidance=6.0,
        seed=variant, style=style, style_version=style_version, reroll=reroll,
    )


def make_style(palette: tuple[str, ...] = (), **qa: object) -> Style:
    qa.setdefault("review_sample_rate", 0.0)
    return Style.model_validate({
        "name": "acme", "version": 2, "owner": "qa@example.com", "status": "approved",
        "model": {"id": "brandbatch/tiny-sd"}, "prompt_template": "product_ad.j2",
        "aspect_ratios": ["1:1"], "palette": list(palette), "qa": qa, "placements": ["meta.feed.square"],
    })


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def solid(rgb: tuple[int, int, int], width: int = SIZE, height: int = SIZE) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3)).copy()


def noise(seed: int = 0, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """Colourful noise, like a tiny randomly initialised diffusion model renders."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def scene(width: int = SIZE, height: int = SIZE, seed: int = 0) -> np.ndarray:
    """A real-looking picture: sky gradient, ground, a lit disc with soft edges, mild grain."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    sky = np.stack([80 + 100 * y / height, 120 + 80 * y / height, 230 - 60 * y / height], axis=-1)
    ground = np.stack([60 + 40 * x / width, 110 + 30 * np.sin(x / 7.0), 50 + 0 * x], axis=-1)
    img = np.where((y > 0.62 * height)[..., None], ground, sky)
    r = np.hypot(x - 0.35 * width, y - 0.4 * height)
    disc = np.clip((0.15 * width - r) / 2.0, 0, 1)[..., None]
    img = img * (1 - disc) + np.array([240, 170, 60]) * disc
    img += np.random.default_rng(seed).normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
