"""Exports follow the approvals: a new render replaces a stale file, a withdrawn approval
removes the asset's files and manifest rows."""

from __future__ import annotations

import dataclasses
import json

from exports.manifest import write_manifests
from exports.placements import load_placements
from exports.stage import export_assets
from tests.exports.conftest import make_item, put_render


def test_a_rerolled_render_replaces_the_stale_export(store):
    placements = load_placements()
    item = make_item(store, ("meta.feed.square",))
    (first,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    rerolled = {a: dataclasses.replace(j, reroll=1, seed=j.seed + 1) for a, j in item.renders.items()}
    for job in rerolled.values():
        put_render(store, job)
    (second,) = export_assets([dataclasses.replace(item, renders=rerolled)], store, placements,
                              formats=("webp",), workers=1)
    assert second["path"] == first["path"]
    assert second["job_key"] == rerolled["1:1"].key != first["job_key"]
    assert second["sha256"] != first["sha256"]
    assert rerolled["1:1"].key.encode() in store.get(second["path"])


def test_withdrawn_approvals_lose_their_files_and_rows(store):
    placements = load_placements()
    keep = make_item(store, ("meta.feed.square",), asset="keep-01")
    drop = make_item(store, ("meta.feed.square",), asset="drop-02")
    rows = export_assets([keep, drop], store, placements, formats=("webp",), workers=1)
    write_manifests(store, "spring", rows)
    dropped = [r["path"] for r in rows if r["asset_id"] == "drop-02"]
    assert dropped and all(store.exists(p) for p in dropped)

    kept_rows = export_assets([keep], store, placements, formats=("webp",), workers=1)
    merged = write_manifests(store, "spring", kept_rows, approved={("keep-01", 1)})
    assert {r["asset_id"] for r in merged} == {"keep-01"}
    assert not any(store.exists(p) for p in dropped)
    assert json.loads(store.get("spring/manifest.json")) == merged
    assert all(store.exists(r["path"]) for r in merged)
