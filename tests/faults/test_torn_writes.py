"""Torn files on disk (a crash, an interrupted copy, bit rot) are detected and made again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.render.jobs import make_job

from exports.manifest import write_manifests
from render.stage import png_problem, render_missing
from store.keys import render_key, sidecar_key
from store.local import LocalStore


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_damaged_renders_are_rendered_again_and_intact_ones_kept(tmp_path):
    jobs = [make_job(i, width=32, height=32, steps=1) for i in range(5)] + [make_job(5, width=48, height=32, steps=1)]
    store = LocalStore(tmp_path)
    assert render_missing(jobs, store, batch_size=2).failed == []
    original = {job.key: store.get(render_key(job.key)) for job in jobs}
    sidecars = {job.key: store.get(sidecar_key(job.key)) for job in jobs}
    path = {job.key: tmp_path / render_key(job.key) for job in jobs}
    cut, zeroed, flipped, torn_sidecar, intact, swapped = (job.key for job in jobs)
    path[cut].write_bytes(original[cut][: len(original[cut]) // 2])  # an interrupted copy
    path[zeroed].write_bytes(original[zeroed][:-40] + bytes(40))  # size written, data never flushed
    damaged = bytearray(original[flipped])
    damaged[len(damaged) // 2] ^= 0x08
    path[flipped].write_bytes(bytes(damaged))  # one bit of rot in the image data
    (tmp_path / sidecar_key(torn_sidecar)).write_bytes(sidecars[torn_sidecar][:25])
    path[swapped].write_bytes(original[intact])  # a whole PNG, but another job's (32x32, not 48x32)

    report = render_missing(jobs, store, batch_size=2)

    assert report.failed == [] and report.cached == [intact]
    assert sorted(report.rendered) == sorted(report.damaged) == sorted([cut, zeroed, flipped, torn_sidecar, swapped])
    assert "truncated" in report.damaged[cut] and "bad CRC in chunk 'IDAT'" in report.damaged[zeroed]
    assert "bad CRC in chunk 'IDAT'" in report.damaged[flipped]
    assert report.damaged[torn_sidecar].startswith(f"{sidecar_key(torn_sidecar)}: not a valid RenderSidecar document")
    assert report.damaged[swapped].endswith("is 32x32 but the job is 48x32")
    for job in jobs:  # the same job renders the same bytes: everything is as before the damage
        assert store.get(render_key(job.key)) == original[job.key]
        assert json.loads(store.get(sidecar_key(job.key)))["job_key"] == job.key
    assert not [name for name in _files(tmp_path) if name.endswith(".tmp")]
    assert render_missing(jobs, store).cached == [job.key for job in jobs]


def test_png_problem_accepts_whole_pngs_only():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (7, 5), (200, 30, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert png_problem(data, 7, 5) == ""
    assert png_problem(data + b"junk", 7, 5) == "corrupt: 4 bytes after the IEND chunk"
    assert png_problem(data[:-12], 7, 5) == f"truncated: no IEND chunk in {len(data) - 12} bytes"
    assert png_problem(b"", 7, 5) == png_problem(b"GIF89a", 7, 5) == "not a PNG (no PNG signature)"
    assert png_problem(data, 5, 7) == "is 7x5 but the job is 5x7"


def _row(path: str, asset: str) -> dict:
    return {"path": path, "asset_id": asset, "variant": 1, "placement": "p", "format": "webp", "bytes": 10}


def test_a_torn_manifest_is_rebuilt_and_a_foreign_file_refused(tmp_path):
    store = LocalStore(tmp_path)
    rows = [_row("c/exports/p/a.webp", "a"), _row("c/exports/p/b.webp", "b")]
    write_manifests(store, "c", rows, approved={("a", 1), ("b", 1)})
    manifest, csv = (tmp_path / "c/manifest.json"), (tmp_path / "c/manifest.csv")
    whole_json, whole_csv = manifest.read_bytes(), csv.read_bytes()
    for torn in (whole_json[: len(whole_json) // 2], whole_json[:-30] + bytes(30), bytes(len(whole_json)), b""):
        manifest.write_bytes(torn)
        assert write_manifests(store, "c", rows, approved={("a", 1), ("b", 1)}) == rows
        assert manifest.read_bytes() == whole_json and csv.read_bytes() == whole_csv
    manifest.write_bytes(b'{"someone": "else\'s file"}')
    with pytest.raises(ValueError, match="c/manifest.json is not a brandbatch manifest"):
        write_manifests(store, "c", rows)
    assert manifest.read_bytes() == b'{"someone": "else\'s file"}'
