"""Hostile logo files: each fails its own item with an error naming the file and the asset,
nothing is written for that item, and the other items export as usual."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import replace

import pytest
from PIL import Image

from exports.logo import MAX_LOGO_PIXELS, load_logo
from exports.placements import load_placements
from exports.stage import export_assets
from tests.exports.conftest import make_item

PLACEMENT = "google.display.upload.300x250"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 1-bit pixels (a bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def _good_logo_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (48, 48), (41, 51, 92, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), "red").save(buffer, "GIF")
    return buffer.getvalue()


HOSTILE = {
    "truncated.png": (lambda: _good_logo_png()[:-40], "cannot be decoded: image file is truncated"),
    "bomb.png": (lambda: _png_claiming(20_000, 20_000), "refused as a decompression bomb"),
    "warned-bomb.png": (lambda: _png_claiming(10_000, 10_000), "refused as a decompression bomb"),
    "big.png": (lambda: _png_claiming(5_000, 5_000), f"at most {MAX_LOGO_PIXELS} are allowed"),
    "disguised-gif.png": (_gif, "is not a PNG, JPEG, WEBP image"),
    "notes.png": (lambda: b"just some text, not an image\n", "is not a PNG, JPEG, WEBP image"),
}


@pytest.fixture(scope="module")
def placements():
    return load_placements()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_logo_fails_only_its_item(name, store, tmp_path, placements, recwarn):
    make_bytes, expected = HOSTILE[name]
    bad_logo, good_logo = tmp_path / name, tmp_path / "good.png"
    bad_logo.write_bytes(make_bytes())
    good_logo.write_bytes(_good_logo_png())
    bad = replace(make_item(store, (PLACEMENT,), asset="bad-01"), logo=str(bad_logo))
    good = replace(make_item(store, (PLACEMENT,), asset="good-01"), logo=str(good_logo))
    plain = make_item(store, (PLACEMENT,), asset="plain-01")
    rows = export_assets([bad, good, plain], store, placements, formats=("webp", "upload"), workers=1)
    by_asset: dict[str, list[dict]] = {}
    for row in rows:
        by_asset.setdefault(row["asset_id"], []).append(row)
    assert len(by_asset["bad-01"]) == 2
    for row in by_asset["bad-01"]:
        assert row["status"] == "failed" and not store.exists(row["path"])
        assert expected in row["error"] and str(bad_logo) in row["error"] and "bad-01" in row["error"], row["error"]
    assert store.list(f"spring/exports/{PLACEMENT}") == sorted(r["path"] for r in rows if r["asset_id"] != "bad-01")
    assert all(r["status"] == "exported" for r in by_asset["good-01"] + by_asset["plain-01"])
    assert not [w for w in recwarn.list if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_logo_is_decoded_whole_and_as_rgba(tmp_path):
    path = tmp_path / "logo.jpg"
    Image.new("RGB", (40, 20), "navy").save(path, "JPEG")
    logo = load_logo(str(path), path.read_bytes())
    assert logo.mode == "RGBA" and logo.size == (40, 20)


def test_the_bomb_defence_leaves_pillow_and_warnings_settings_alone(tmp_path):
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(10_000, 10_000))
    with pytest.raises(ValueError, match="decompression bomb"):
        load_logo(str(path), path.read_bytes())
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters
