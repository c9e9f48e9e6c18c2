"""scripts/screenshots.py (`make screenshots`) still captures every page the docs show: its
capture function, run against a small queue, writes PNGs that are not blank."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.review.review_factories import CAMPAIGN, make_jobs, results_for

from review.queue import ReviewQueue
from store import LocalStore
from store.keys import render_key

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
screenshots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screenshots)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (screenshots.CHROMIUM.exists() and screenshots.CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver: `make browser`"),
]


def gradient(width: int, height: int, tint: int) -> bytes:
    import io

    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    pixels = np.stack([x, np.full_like(x, tint), 255 - x], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_screenshot_script_captures_every_page(out: Path, queue: ReviewQueue, tmp_path: Path) -> None:
    store = LocalStore(out)
    for n, asset in enumerate(["tent-02", "trail-pack-01", "bottle-03"]):
        jobs = make_jobs(asset, row=n + 2)
        for job in jobs:
            store.put(render_key(job.key), gradient(job.width, job.height, 60 * n))
        queue.enqueue(jobs, results_for(jobs, "review"))
    published = []
    with screenshots.serving(out, lambda *args: published.append(args) or []) as base:
        written = screenshots.capture(base, CAMPAIGN, tmp_path / "shots", tmp_path / "chromium", timeout=60)
    assert [p.name for p in written] == list(screenshots.SHOTS)
    assert published == [(CAMPAIGN, screenshots.REVIEWER, "")]  # the campaign page was shot after a publish
    for path in written:
        image = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        assert image.shape[1] == screenshots.WIDTH and image.shape[0] >= 600, path
        assert image.std() > 10 and len(np.unique(image)) > 50, f"{path.name} looks blank"
