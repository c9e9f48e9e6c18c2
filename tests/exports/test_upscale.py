"""Model upscaling in exports: the style's upscaler (tiny random-weight Real-ESRGAN compact model,
loaded from its .pth by spandrel) runs only when a placement needs more than ``max_upscale``,
its output is stored content-addressed and reused, and rows say what was done."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from tests.exports.conftest import make_item

from exports.placements import Placement, SafeZone
from exports.stage import export_assets
from qa.report import upscale_warnings
from render.upscale import UpscalerSpec, upscale, upscaler_spec
from store import keys


def placement(pid: str, size: int) -> Placement:
    return Placement(id=pid, platform="test", name=pid, width=size, height=size, min_width=None, min_height=None,
                     max_bytes=None, upload_formats=("png",), safe_zone=SafeZone(), source="test",
                     checked=dt.date(2026, 11, 30))


# the 1:1 render is 128 px: 128 and 160 px need 1.0x and exactly 1.25x (the limit: no model),
# 400 px needs 3.1x (model x4 to 512 px, then 0.78x), 1200 px needs 9.4x (2.34x even after the model)
PLACEMENTS = {p.id: p for p in (placement("same", 128), placement("limit", 160), placement("big", 400),
                                placement("huge", 1200))}


@pytest.fixture
def item(store):
    base = make_item(store, tuple(PLACEMENTS), headline="", cta="")
    return dataclasses.replace(base, max_upscale=1.25, upscaler=upscaler_spec("brandbatch/tiny-esrgan", None, None))


def rows_by_placement(rows):
    assert all(r["status"] == "exported" for r in rows), [r["error"] for r in rows]
    return {r["placement"]: r for r in rows}


def test_the_upscaler_runs_above_max_upscale_and_never_at_or_below(store, item):
    rows = rows_by_placement(export_assets([item], store, PLACEMENTS, formats=["png"], workers=1))
    for pid in ("same", "limit"):
        assert (rows[pid]["upscaler"], rows[pid]["upscaler_factor"]) == ("", None)
        assert rows[pid]["upscale"] <= 1.25 and not rows[pid]["upscale_flagged"]
    for pid in ("big", "huge"):
        assert rows[pid]["upscaler"] == item.upscaler.tag and rows[pid]["upscaler_factor"] == 4.0
    assert rows["big"]["upscale"] == round(400 / 512, 3) and not rows["big"]["upscale_flagged"]
    assert rows["huge"]["upscale"] == round(1200 / 512, 3) and rows["huge"]["upscale_flagged"]
    (warning,) = upscale_warnings(rows.values())
    assert rows["huge"]["path"].removesuffix(".png") + " (.png)" in warning and "2.344x" in warning and "1.25x" in warning
    stored = [k for k in store.list("upscaled/")]
    assert len(stored) == 1  # one render needed the model: one upscaled source, shared by two placements


def test_upscaled_sources_are_content_addressed_and_reused(store, item):
    export_assets([item], store, PLACEMENTS, formats=["png"], workers=1)
    render = item.renders["1:1"]
    key = keys.upscaled_key(hashlib.sha256(store.get(keys.render_key(render.key))).hexdigest(), item.upscaler.tag)
    with Image.open(io.BytesIO(store.get(key))) as image:
        assert image.size == (512, 512)
    # a stored upscaled source is used as it is: replace it by a flat one and export again
    flat = io.BytesIO()
    Image.new("RGB", (512, 512), (10, 200, 30)).save(flat, "PNG")
    store.put(key, flat.getvalue(), overwrite=True)
    for path in store.list("spring/exports/big/"):
        store.delete(path)
    only_big = dataclasses.replace(item, placements=("big",))
    rows = rows_by_placement(export_assets([only_big], store, PLACEMENTS, formats=["png"], workers=1))
    with Image.open(io.BytesIO(store.get(rows["big"]["path"]))) as exported:
        assert np.abs(np.asarray(exported, dtype=int) - (10, 200, 30)).max() <= 1


def test_the_tiny_upscaler_is_a_real_x4_model_close_to_its_input(tmp_path):
    spec = upscaler_spec("brandbatch/tiny-esrgan", None, None)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8))
    out, scale = upscale(image, spec)
    assert scale == 4 and out.size == (96, 64)
    again, _ = upscale(image, spec)
    assert out.tobytes() == again.tobytes()  # deterministic
    nearest = np.asarray(image.resize((96, 64), Image.Resampling.NEAREST), dtype=int)
    assert 0 < np.abs(np.asarray(out, dtype=int) - nearest).mean() < 40  # Real-ESRGAN compact: input + residual


def test_weights_that_differ_from_their_sha256_fail_the_rows_that_need_them(store, item, tmp_path):
    weights = tmp_path / "esrgan.pth"
    weights.write_bytes(open(item.upscaler.path, "rb").read())
    bad = dataclasses.replace(item, upscaler=UpscalerSpec("esrgan.pth", str(weights), "0" * 64))
    rows = {r["placement"]: r for r in export_assets([bad], store, PLACEMENTS, formats=["png"], workers=1)}
    assert rows["same"]["status"] == rows["limit"]["status"] == "exported"
    for pid in ("big", "huge"):
        assert rows[pid]["status"] == "failed" and "not the pinned" in rows[pid]["error"]
