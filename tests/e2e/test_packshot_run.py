"""The example campaign's packshot row, run as `make run` runs it: every exported placement's
product pixels are the packshot put through the same crop and scale (PNG, so nothing is lost to
a lossy encoder)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exports.fit import crop_box
from exports.product import fitted_layer, source_box
from plan.jobs import RenderJob
from render.product import load_packshot
from store.keys import render_key, sidecar_key, upscaled_key
from store.local import LocalStore
from tests.e2e.test_campaign_run import brandbatch

pytestmark = pytest.mark.slow


def test_the_example_packshot_row_exports_the_exact_product(tmp_path: Path, repo: Path, prefect_home: Path) -> None:
    with open(repo / "campaigns" / "spring-launch.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    packshot_rows = [r for r in rows[1:] if r[header.index("product_image")]]
    assert packshot_rows, "the example campaign has a packshot row"
    with open(tmp_path / "spring-launch.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *packshot_rows])
    shutil.copytree(repo / "campaigns" / "packshots", tmp_path / "packshots")

    result = brandbatch("run", "spring-launch.csv", "--out", "out", "--formats", "png", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    store = LocalStore(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "spring-launch" / "manifest.json").read_text(encoding="utf-8"))
    assert {r["status"] for r in manifest} == {"exported"} and len(manifest) >= 2
    packshot_sha = hashlib.sha256((repo / "campaigns" / "packshots" / "acme-bottle.png").read_bytes()).hexdigest()

    def job(key: str) -> RenderJob:
        return RenderJob.from_dict(json.loads(store.get(sidecar_key(key))))

    for row in manifest:
        assert row["input_images"] == f"product_image={packshot_sha}"
        rendered = job(row["job_key"])
        renders = {rendered.aspect: rendered}
        if rendered.master_key:
            master = job(rendered.master_key)
            renders[master.aspect] = master
        product = load_packshot(store, rendered)
        box = source_box(rendered, renders, product, store)
        data = store.get(render_key(rendered.key))
        source = store.get(upscaled_key(hashlib.sha256(data).hexdigest(), row["upscaler"])) if row["upscaler"] else data
        image = Image.open(io.BytesIO(source)).convert("RGB")
        scale = image.width / rendered.width
        size = (row["width"], row["height"])
        focal = ((box[0] + box[2]) / 2 / rendered.width, (box[1] + box[3]) / 2 / rendered.height)  # the product's centre
        crop = crop_box(image.size, *size, focal)
        layer = fitted_layer(product, tuple(v * scale for v in box), crop, size)
        opaque = np.asarray(layer.getchannel("A")) == 255
        exported = np.asarray(Image.open(tmp_path / "out" / row["path"]).convert("RGB"))
        assert opaque.sum() > 0.05 * size[0] * size[1], row["placement"]
        assert np.array_equal(exported[opaque], np.asarray(layer.convert("RGB"))[opaque]), row["placement"]
