"""Export identity at the stage: each part of the fingerprint, changed alone, rewrites its files
with that reason; a kept file is verified against its manifest row first."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import PIL
import pytest
from PIL import Image

from exports.credentials import development_credential
from exports.fingerprint import PARTS
from exports.manifest import write_manifests
from exports.overlay import OverlayStyle
from exports.placements import SafeZone, load_placements
from exports.stage import export_assets, rewrite_counts
from store.keys import render_key
from tests.exports.conftest import make_item, synthetic_render

PID = "google.display.upload.300x250"


@pytest.fixture(scope="module")
def placements():
    return load_placements()


def _export(store, item, placements, formats=("webp", "upload"), credential=None) -> list[dict]:
    """One run: export, then merge the rows into the manifest, as the flow does."""
    rows = export_assets([item], store, placements, formats=formats, workers=1, credential=credential)
    write_manifests(store, item.campaign, rows)
    return rows


def _logo(path: Path, colour: str) -> str:
    Image.new("RGBA", (40, 20), colour).save(path, "PNG")
    return str(path)


def _with_placement(placements, **changes):
    return {**placements, PID: dataclasses.replace(placements[PID], **changes)}


def _rerender(store, item):
    """The same job keys, other bytes (a render replaced in the store)."""
    for job in item.renders.values():
        buffer = io.BytesIO()
        synthetic_render(job.width, job.height, seed=job.seed + 100).save(buffer, "PNG")
        store.put(render_key(job.key), buffer.getvalue(), overwrite=True)
    return item


CHANGES = {  # reason -> (store, item, placements, tmp) -> (item, placements, credential) after the change
    "render changed": lambda store, item, p, tmp: (_rerender(store, item), p),
    "size changed": lambda store, item, p, tmp: (item, _with_placement(p, width=360, height=300)),
    "cap changed": lambda store, item, p, tmp: (item, _with_placement(p, max_bytes=150_000)),
    "safe zone changed": lambda store, item, p, tmp: (item, _with_placement(p, safe_zone=SafeZone(top=20))),
    "copy changed": lambda store, item, p, tmp: (dataclasses.replace(item, cta="Buy today"), p),
    "logo changed": lambda store, item, p, tmp: (dataclasses.replace(item, logo=_logo(tmp / "logo.png", "red")), p),
    "overlay style changed": lambda store, item, p, tmp: (
        dataclasses.replace(item, overlay=OverlayStyle(cta_colour=(0, 0, 255))), p),
    # The 300x250 crop moves with the focal point; the square one is the whole 1:1 render either way.
    "crop changed": lambda store, item, p, tmp: (dataclasses.replace(item, focal=(0.5, 0.1)), p),
    "approval changed": lambda store, item, p, tmp: (dataclasses.replace(item, approval_id="rev-2", approved_by="sam"), p),
    "signing changed": lambda store, item, p, tmp: (item, p, development_credential(tmp / "another-ca")),
}


@pytest.mark.parametrize("reason", sorted(CHANGES))
def test_one_change_rewrites_its_files_with_the_reason_and_keeps_the_rest(reason, store, placements, tmp_path):
    item = dataclasses.replace(make_item(store, (PID, "meta.feed.square")), logo=_logo(tmp_path / "logo.png", "navy"),
                               focal=(0.5, 0.5))
    first = _export(store, item, placements)
    assert rewrite_counts(first) == {"new file": 4}
    mtimes = {r["path"]: Path(store.location(r["path"])).stat().st_mtime_ns for r in first}
    changed_item, changed_placements, *credential = CHANGES[reason](store, item, placements, tmp_path)
    rows = _export(store, changed_item, changed_placements, credential=credential[0] if credential else None)
    touched = 4 if reason in ("render changed", "copy changed", "logo changed", "overlay style changed",
                              "approval changed", "signing changed") else 2
    assert rewrite_counts(rows) == {reason: touched}
    before = {r["path"]: r for r in first}
    for row in rows:
        assert row["status"] == "exported", row["error"]
        if row["rewritten"]:
            assert row["sha256"] != before[row["path"]]["sha256"]
            assert row["export_fingerprint"] != before[row["path"]]["export_fingerprint"]
        else:
            assert row["placement"] != PID and row["sha256"] == before[row["path"]]["sha256"]
            assert Path(store.location(row["path"])).stat().st_mtime_ns == mtimes[row["path"]]
    assert rewrite_counts(_export(store, changed_item, changed_placements,
                                  credential=credential[0] if credential else None)) == {}


def test_the_encoder_and_its_library_versions_are_part_of_the_identity(store, placements, monkeypatch):
    item = make_item(store, (PID,))
    _export(store, item, placements)
    monkeypatch.setattr(PIL, "__version__", "0.0.0-another-build")
    assert rewrite_counts(_export(store, item, placements)) == {"encoder changed": 2}


def test_several_changes_are_all_named(store, placements):
    item = make_item(store, (PID,))
    _export(store, item, placements)
    changed = _with_placement(placements, width=304, height=256, max_bytes=150_000)
    assert rewrite_counts(_export(store, dataclasses.replace(item, headline="New"), changed)) == {
        "size changed, cap changed, copy changed": 2}


def test_every_file_carries_its_fingerprint_in_row_and_xmp(store, placements):
    rows = _export(store, make_item(store, (PID,)), placements, formats=("webp", "avif", "jpeg", "png"))
    assert len({r["export_fingerprint"] for r in rows}) == 4  # the format is part of it
    manifest = {r["path"]: r for r in json.loads(store.get("spring/manifest.json"))}
    for row in rows:
        with Image.open(io.BytesIO(store.get(row["path"]))) as image:
            assert row["export_fingerprint"] in json.dumps(image.getxmp())
        assert manifest[row["path"]]["export_fingerprint"] == row["export_fingerprint"]
        assert set(manifest[row["path"]]["export_inputs"]) == set(PARTS) and "rewritten" not in manifest[row["path"]]
    assert "export_fingerprint" in store.get("spring/manifest.csv").decode().splitlines()[0]


def test_a_kept_file_is_verified_against_the_manifest(store, placements):
    item = make_item(store, (PID,))
    (row,) = _export(store, item, placements, formats=("webp",))
    path = Path(store.location(row["path"]))
    path.write_bytes(path.read_bytes() + b"tampered")  # same fingerprint in its XMP, other bytes
    (again,) = _export(store, item, placements, formats=("webp",))
    assert again["rewritten"] == "file changed since export"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == again["sha256"] and b"tampered" not in path.read_bytes()
    assert again["export_fingerprint"] == row["export_fingerprint"]

    path.unlink()
    assert _export(store, item, placements, formats=("webp",))[0]["rewritten"] == "new file"


def test_a_kept_file_must_fit_the_current_cap(store, placements):
    """A manifest row that vouches for a file over the cap (edited by hand, another tool) does
    not make the file count: it is made again within the cap."""
    item = make_item(store, (PID,))
    (row,) = _export(store, item, placements, formats=("webp",))
    path = Path(store.location(row["path"]))
    padded = path.read_bytes() + b"\0" * (placements[PID].max_bytes + 1)
    path.write_bytes(padded)
    manifest = json.loads(store.get("spring/manifest.json"))
    manifest[0] |= {"sha256": hashlib.sha256(padded).hexdigest(), "bytes": len(padded)}
    store.put("spring/manifest.json", json.dumps(manifest).encode(), overwrite=True)
    (again,) = _export(store, item, placements, formats=("webp",))
    assert again["rewritten"] == "over the cap" and len(path.read_bytes()) <= placements[PID].max_bytes


def test_a_file_without_a_manifest_row_counts_only_if_its_xmp_names_the_fingerprint(store, placements):
    """Another run that wrote the file has not written the manifest yet (or the manifest was torn)."""
    item = make_item(store, (PID,))
    (first,) = export_assets([item], store, placements, formats=("webp",), workers=1)  # no manifest written
    (second,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    assert second["rewritten"] == "" and second["sha256"] == first["sha256"]
    export_assets([dataclasses.replace(item, cta="Other")], store, placements, formats=("webp",), workers=1)
    (third,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    assert third["rewritten"] == "not in the manifest" and third["export_fingerprint"] == first["export_fingerprint"]
    path = Path(store.location(first["path"]))
    path.write_bytes(path.read_bytes()[:-200])  # cut short: its XMP is intact, its pixels are not
    (fourth,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    assert fourth["rewritten"] == "not in the manifest" and fourth["export_fingerprint"] == first["export_fingerprint"]


def test_a_stale_file_that_cannot_be_made_again_is_removed(store, placements):
    item = make_item(store, (PID,))
    (row,) = _export(store, item, placements, formats=("webp",))
    (failed,) = _export(store, item, _with_placement(placements, max_bytes=1024), formats=("webp",))
    assert failed["status"] == "failed" and "over the cap of 1024 bytes" in failed["error"]
    assert "the earlier file was removed" in failed["error"] and not store.exists(row["path"])


def test_an_unreadable_input_fails_the_row_but_keeps_the_file(store, placements, tmp_path):
    """A logo that cannot be read now (an unmounted share) says nothing about the stored file."""
    item = dataclasses.replace(make_item(store, (PID,)), logo=_logo(tmp_path / "logo.png", "navy"))
    (row,) = _export(store, item, placements, formats=("webp",))
    (tmp_path / "logo.png").unlink()
    (failed,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    assert failed["status"] == "failed" and "does not exist" in failed["error"] and store.exists(row["path"])


def test_an_export_with_nothing_new_verifies_here_and_starts_no_workers(store, placements, monkeypatch):
    import exports.stage as stage

    items = [make_item(store, (PID, "meta.stories"), asset=a) for a in ("pool-01", "pool-02", "pool-03")]
    pools = []
    real_pool = stage.export_pool
    written = []  # files in the store when the pool starts
    monkeypatch.setattr(stage, "export_pool", lambda workers: pools.append(workers) or written.append(
        len(store.list(f"{items[0].campaign}/exports"))) or real_pool(workers))
    first = export_assets(items, store, placements, formats=("webp",), workers=2)
    write_manifests(store, items[0].campaign, first)
    assert pools == [1] and all(row["rewritten"] for row in first)  # new files: this process and a worker
    assert written == [0], "files not in the manifest: the worker starts before this process makes any"

    again = export_assets(items, store, placements, formats=("webp",), workers=2)
    assert pools == [1], "every file was current: no pool"
    assert again == [{**row, "rewritten": ""} for row in first]

    changed = [dataclasses.replace(items[0], cta="Buy today"), *items[1:]]
    rows = export_assets(changed, store, placements, formats=("webp",), workers=2)
    assert rewrite_counts(rows) == {"copy changed": 2}
