"""Manifests: merge by path, stable bytes, spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from exports.manifest import MANIFEST_FIELDS, neutralise, write_manifests


def _row(path: str, **extra) -> dict:
    return {name: "" for name in MANIFEST_FIELDS} | {"path": path, "bytes": 10} | extra


def test_formula_cells_are_neutralised_in_csv_only(store):
    headline = '=HYPERLINK("http://evil.example","click")'
    rows = [_row("c/exports/p/a.webp", headline=headline, cta="+1 deal", alt_text="@home\tnow",
                 approved_by="-x", asset_id="\rcr", error="fine")]
    write_manifests(store, "c", rows)
    (parsed,) = csv.DictReader(io.StringIO(store.get("c/manifest.csv").decode(), newline=""))
    assert parsed["headline"] == "'" + headline and parsed["cta"] == "'+1 deal"
    assert parsed["alt_text"] == "'@home\tnow" and parsed["approved_by"] == "'-x" and parsed["asset_id"] == "'\rcr"
    assert parsed["error"] == "fine" and parsed["bytes"] == "10"
    assert json.loads(store.get("c/manifest.json"))[0]["headline"] == headline
    assert neutralise(-5) == -5 and neutralise("a=b") == "a=b"


def test_rows_merge_by_path_and_sort(store):
    write_manifests(store, "c", [_row("c/exports/p/b.webp"), _row("c/exports/p/a.webp", bytes=1)])
    merged = write_manifests(store, "c", [_row("c/exports/p/a.webp", bytes=2), _row("c/exports/q/a.webp")])
    assert [(r["path"], r["bytes"]) for r in merged] == [
        ("c/exports/p/a.webp", 2), ("c/exports/p/b.webp", 10), ("c/exports/q/a.webp", 10)]
    assert json.loads(store.get("c/manifest.json")) == merged
    lines = store.get("c/manifest.csv").decode().split("\r\n")[:-1]
    assert lines[0].split(",") == list(MANIFEST_FIELDS) and len(lines) == 4


def test_a_broken_manifest_is_named_not_overwritten(store):
    store.put("c/manifest.json", b"{not json")
    with pytest.raises(ValueError, match=r"c/manifest.json is not a brandbatch manifest"):
        write_manifests(store, "c", [_row("c/exports/p/a.webp")])
    assert store.get("c/manifest.json") == b"{not json"
