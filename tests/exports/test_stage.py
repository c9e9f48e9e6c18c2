"""export_assets + write_manifests on synthetic renders in a real LocalStore."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from exports.manifest import manifest_row
from exports.metadata import TRAINED_ALGORITHMIC_MEDIA
from exports.placements import load_placements
from exports.provenance import verify
from exports.stage import export_assets, held_for_review, write_manifests
from store.local import LocalStore
from tests.exports.conftest import make_item

PLACEMENTS = ("google.display.upload.300x250", "google.display.upload.728x90", "meta.stories")
PIL_FORMATS = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}


@pytest.fixture(scope="module")
def placements():
    return load_placements()


def test_every_file_has_exact_size_format_cap_xmp_and_no_exif(store, placements):
    item = make_item(store, PLACEMENTS)
    rows = export_assets([item], store, placements, formats=("webp", "avif", "upload"), workers=1)
    assert len(rows) == len(PLACEMENTS) * 3
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    for row in rows:
        placement = placements[row["placement"]]
        assert row["status"] == "exported", row["error"]
        data = store.get(row["path"])
        assert len(data) == row["bytes"] and (placement.max_bytes is None or len(data) <= placement.max_bytes)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == PIL_FORMATS[row["format"]]
            assert image.size == (placement.width, placement.height) == (row["width"], row["height"])
            image.load()
            assert not image.getexif(), row["path"]
            assert "exif" not in image.info and "icc_profile" not in image.info
            xmp = json.dumps(image.getxmp())
            assert TRAINED_ALGORITHMIC_MEDIA in xmp and row["job_key"] in xmp
            assert all(f'"{name}": "{value}"' in xmp for name, value in (
                ("Seed", row["seed"]), ("Model", row["model"]), ("ModelRevision", row["model_revision"])))
        check = verify(data, row["format"])
        assert check.valid and check.development and row["c2pa_credential"] == "development", check.describe()
        assert check.assertion == {"job_key": row["job_key"], "seed": row["seed"], "style": "acme@2",
                                   "placement": row["placement"], "approval_id": row["approval_id"],
                                   "approved_by": row["approved_by"], "export_fingerprint": row["export_fingerprint"]}
        assert check.agent == {"name": "brandbatch", "version": check.agent["version"], "model": row["model"],
                               "model_revision": row["model_revision"]}
    upload = {r["placement"]: r["format"] for r in rows if r["format"] not in ("webp", "avif")}
    assert upload == {pid: placements[pid].upload_formats[0] for pid in PLACEMENTS}
    assert {Path(r["path"]).suffix for r in rows} == {".webp", ".avif", ".jpg"}


def test_rows_carry_the_manifest_contract(store, placements):
    item = make_item(store, ("meta.stories",))
    (row,) = export_assets([item], store, placements, formats=("webp",), workers=1)
    job = item.renders["9:16"]  # nearest aspect to 1080x1920
    assert {
        "asset_id": "pack-01", "row": 2, "variant": 1, "placement": "meta.stories", "format": "webp",
        "width": 1080, "height": 1920, "seed": job.seed, "style": "acme", "style_version": 2,
        "model": "brandbatch/tiny-sd", "model_revision": "builtin-1", "job_key": job.key,
        "prompt_sha256": job.prompt_sha256, "qa_verdict": "pass", "approval_id": "auto-pack-01-1",
        "approved_by": "qa:auto", "alt_text": "Orange backpack", "path": "spring/exports/meta.stories/pack-01.webp",
    }.items() <= row.items()
    assert row["upscale"] == 12.0 and row["upscale_flagged"] is True
    assert len(row["sha256"]) == 64


def test_variants_get_their_own_file_names(store, placements):
    items = [make_item(store, ("google.display.upload.300x250",), variant=v) for v in (1, 2)]
    rows = export_assets(items, store, placements, formats=("upload",), workers=1)
    assert [r["path"] for r in rows] == ["spring/exports/google.display.upload.300x250/pack-01-v2.jpg",
                                         "spring/exports/google.display.upload.300x250/pack-01.jpg"]
    assert rows[0]["sha256"] != rows[1]["sha256"]


def test_rerun_skips_existing_files_and_gives_identical_manifests(store, placements):
    item = make_item(store, PLACEMENTS[:2])
    first = export_assets([item], store, placements, workers=1)
    write_manifests(store, "spring", first)
    manifest = store.get("spring/manifest.json"), store.get("spring/manifest.csv")
    files = {r["path"]: Path(store.location(r["path"])).stat().st_mtime_ns for r in first}
    second = export_assets([item], store, placements, workers=1)
    write_manifests(store, "spring", second)
    assert {r["rewritten"] for r in first} == {"new file"} and {r["rewritten"] for r in second} == {""}
    assert list(map(manifest_row, second)) == list(map(manifest_row, first))
    assert (store.get("spring/manifest.json"), store.get("spring/manifest.csv")) == manifest
    assert files == {p: Path(store.location(p)).stat().st_mtime_ns for p in files}


def _content(store, rows: list[dict]) -> list[tuple]:
    """What must not depend on the run: each row without its hash and byte count, and the
    file's pixels and XMP (the C2PA manifest has random salts and an ECDSA signature)."""
    out = []
    for row in rows:
        with Image.open(io.BytesIO(store.get(row["path"]))) as image:
            out.append(({k: v for k, v in row.items() if k not in ("sha256", "bytes")}, image.tobytes(),
                        image.getxmp()))
    return out


def test_same_render_gives_same_pixels_and_metadata_in_a_fresh_store(tmp_path, placements):
    from store.local import LocalStore

    contents = []
    for name in ("a", "b"):
        store = LocalStore(tmp_path / name)
        contents.append(_content(store, export_assets([make_item(store, PLACEMENTS[:2])], store, placements,
                                                      workers=1)))
    assert contents[0] == contents[1]


def test_parallel_equals_serial(tmp_path, placements):
    results = []
    for workers in (1, 2):
        store = LocalStore(tmp_path / f"w{workers}")
        items = [make_item(store, PLACEMENTS[:2], asset=a) for a in ("pack-01", "tent-02")]
        results.append(_content(store, export_assets(items, store, placements, formats=("webp", "upload"),
                                                     workers=workers)))
    assert results[0] == results[1]


def test_the_queue_keeps_each_process_on_one_render_and_ends_with_the_short_tasks(tmp_path, placements):
    from exports.stage import _cost, _RenderQueue, prepare_exports

    store = LocalStore(tmp_path / "store")
    items = [make_item(store, ("meta.stories", "iab.mobile_interstitial", "google.display.upload.160x600",
                               "meta.feed.square", "google.display.upload.300x250"), asset=a)
             for a in ("pack-01", "tent-02", "lamp-03")]
    tasks, _ = prepare_exports(items, store, placements, formats=("webp", "upload"), workers=2, pieces=32)
    render = [(task[0].asset_id, task[1].key) for task in tasks]
    queue, taken = _RenderQueue(tasks), {"a": [], "b": []}
    while True:
        progress = False
        for taker in taken:
            if (index := queue.take(taker)) is not None:
                taken[taker].append(index)
                progress = True
        if not progress:
            break
    assert sorted(taken["a"] + taken["b"]) == list(range(len(tasks))) and len(render) > len(set(render))
    assert render[taken["a"][0]] != render[taken["b"][0]]  # while renders are left, nobody joins another's
    for taker, indices in taken.items():
        runs = [render[i] for n, i in enumerate(indices) if n == 0 or render[indices[n - 1]] != render[i]]
        assert len(runs) == len(set(runs)), (taker, runs)  # a process never comes back to a render it left
        for n in range(1, len(indices)):  # in a render, longest first
            if render[indices[n]] == render[indices[n - 1]]:
                assert _cost(tasks[indices[n]][2], ["webp", "upload"]) <= _cost(tasks[indices[n - 1]][2],
                                                                                 ["webp", "upload"])
    last = [i for indices in taken.values() for i in indices[-1:]]
    assert max(_cost(tasks[i][2], ["webp", "upload"]) for i in last) < max(
        _cost(task[2], ["webp", "upload"]) for task in tasks)  # the queue ends with short tasks


def test_tasks_are_cut_at_the_share_of_work_the_caller_asks_for(tmp_path, placements):
    from exports.stage import _cost, prepare_exports

    store = LocalStore(tmp_path / "store")
    items = [make_item(store, ("meta.stories", "iab.mobile_interstitial", "google.display.upload.160x600",
                               "meta.feed.square", "google.display.upload.300x250", "meta.feed.portrait"), asset=a)
             for a in ("pack-01", "tent-02")]
    formats = ("webp", "avif", "upload")
    counts = []
    for pieces in (1, 4, 32):
        tasks, _ = prepare_exports(items, store, placements, formats=formats, workers=2, pieces=pieces)
        share = sum(_cost(task[2], formats) for task in tasks) / (pieces * 2)
        assert all(len(task[2]) == 1 or _cost(task[2], formats) <= share for task in tasks), pieces
        counts.append(len(tasks))
    assert counts == sorted(counts) and counts[0] < counts[-1], counts


def test_a_process_decodes_a_render_once_for_the_tasks_it_takes_from_it(tmp_path, placements, monkeypatch):
    from collections import OrderedDict

    import exports.stage as stage

    decoded = []
    monkeypatch.setattr(stage, "_RECENT", OrderedDict())  # nothing decoded here outlives the test
    monkeypatch.setattr(stage, "focal_point", lambda image: decoded.append(image.size) or (0.5, 0.5))
    store = LocalStore(tmp_path / "store")
    items = [make_item(store, ("meta.feed.square", "google.display.upload.300x250"), asset=a)
             for a in ("pack-01", "tent-02")]
    tasks, _ = stage.prepare_exports(items, store, placements, formats=("webp",), workers=2, pieces=32)
    assert [task[0].asset_id for task in tasks] == ["pack-01", "pack-01", "tent-02", "tent-02"]
    for task in tasks:
        assert all(row["status"] == "exported" for row in stage.run_export_task(task))
    assert len(decoded) == 2  # one per render, not one per task
    stage.export_assets(items, LocalStore(tmp_path / "again"), placements, formats=("webp",), workers=1)
    assert not stage._RECENT  # nothing decoded is kept once an export is done


class _EnvStore(LocalStore):
    """A store that, like boto3 looking for credentials, needs its caller's environment."""

    def put(self, key, data, **kwargs):
        if os.environ.get("BRANDBATCH_TEST_TOKEN") != "set-after-the-first-pool":
            raise RuntimeError("this worker does not have its caller's environment")
        return super().put(key, data, **kwargs)


def test_workers_take_the_callers_environment_set_after_an_earlier_pool(tmp_path, placements, monkeypatch):
    store = LocalStore(tmp_path / "first")
    items = [make_item(store, PLACEMENTS[:2], asset=a) for a in ("pack-01", "tent-02")]
    export_assets(items, store, placements, formats=("webp",), workers=2)  # the fork server exists now
    monkeypatch.setenv("BRANDBATCH_TEST_TOKEN", "set-after-the-first-pool")
    store = _EnvStore(tmp_path / "second")
    items = [make_item(store, PLACEMENTS[:2], asset=a) for a in ("pack-01", "tent-02")]
    rows = export_assets(items, store, placements, formats=("webp",), workers=2)
    assert rows and all(row["status"] == "exported" for row in rows), rows


def test_a_worker_starts_with_the_text_layouts_its_caller_made(store, placements):
    from exports.overlay import text_layouts
    from exports.stage import export_pool

    item = make_item(store, PLACEMENTS, asset="lay-01")
    export_assets([item], store, placements, formats=("webp",), workers=1)  # fits its texts in this process
    made = text_layouts()
    assert made["fits"] and made["faces"]
    with export_pool(1) as pool:
        there = pool.submit(text_layouts).result()
    assert there["fits"].items() >= made["fits"].items() and there["faces"].items() >= made["faces"].items()


class _WorkerFailStore(LocalStore):
    """A store whose writes fail in any process but the one that made it (a worker's disk error)."""

    def __init__(self, root):
        super().__init__(root)
        self.maker = os.getpid()

    def put(self, key, data, **kwargs):
        if os.getpid() != self.maker:
            raise RuntimeError("cannot write in a worker")
        return super().put(key, data, **kwargs)


def test_an_error_in_a_worker_reaches_the_caller(tmp_path, placements):
    store = _WorkerFailStore(tmp_path / "store")
    items = [make_item(store, PLACEMENTS[:2], asset=a) for a in ("pack-01", "tent-02", "lamp-03")]
    with pytest.raises(RuntimeError, match="cannot write in a worker"):  # not lost rows, not a hang
        export_assets(items, store, placements, formats=("webp",), workers=2)


def test_missing_render_and_unknown_placement_fail_only_their_rows(store, placements):
    good = make_item(store, ("google.display.upload.300x250",), asset="good-01")
    broken = make_item(store, ("google.display.upload.300x250", "no.such.placement"), asset="bad-01")
    for job in broken.renders.values():
        Path(store.location(f"renders/{job.key}.png")).unlink()
    rows = export_assets([good, broken], store, placements, formats=("webp",), workers=1)
    by_asset = {(r["asset_id"], r["placement"]): r for r in rows}
    assert by_asset[("good-01", "google.display.upload.300x250")]["status"] == "exported"
    missing = by_asset[("bad-01", "google.display.upload.300x250")]
    assert missing["status"] == "failed" and "is not in the store" in missing["error"]
    assert not store.exists(missing["path"])
    unknown = by_asset[("bad-01", "no.such.placement")]
    assert unknown["status"] == "failed" and "unknown placement 'no.such.placement'" in unknown["error"]


def test_unreachable_byte_cap_fails_that_file_with_the_reason(store, tmp_path):
    extra = tmp_path / "tiny-cap.yaml"
    extra.write_text("placements:\n- {id: meta.stories, max_bytes: 1024}\n")
    placements = load_placements(extra)
    rows = export_assets([make_item(store, ("meta.stories", "google.display.upload.300x250"))], store, placements,
                         formats=("jpeg",), workers=1)
    capped, other = rows[1], rows[0]
    assert capped["placement"] == "meta.stories" and capped["status"] == "failed"
    assert "over the cap of 1024 bytes" in capped["error"] and not store.exists(capped["path"])
    assert other["status"] == "exported"


def test_bad_formats_are_rejected_with_the_allowed_ones(store, placements):
    with pytest.raises(ValueError, match="formats must be some of webp, avif, jpeg, png, upload but are"):
        export_assets([], store, placements, formats=("gif",))


def test_overlays_are_drawn_unless_turned_off_and_a_bad_logo_fails_its_rows(tmp_path, placements):
    from dataclasses import replace

    from store.local import LocalStore

    shas = {}
    for name, overlays in (("with", True), ("without", False)):
        store = LocalStore(tmp_path / name)
        item = make_item(store, ("google.display.upload.300x250",), headline="=Go further", cta="Shop now")
        (row,) = export_assets([item], store, placements, formats=("png",), workers=1, overlays=overlays)
        shas[name] = row["sha256"]
        assert row["status"] == "exported" and row["error"] == ""
    assert shas["with"] != shas["without"]
    store = LocalStore(tmp_path / "logo")
    item = replace(make_item(store, ("google.display.upload.300x250",)), logo=str(tmp_path / "missing.png"))
    (row,) = export_assets([item], store, placements, formats=("png",), workers=1)
    assert row["status"] == "failed" and "logo" in row["error"] and "missing.png" in row["error"]
    write_manifests(store, "spring", [row])


def test_a_focal_hint_replaces_saliency(tmp_path, placements):
    from dataclasses import replace

    from store.local import LocalStore

    shas = []
    for focal in ((0.0, 0.5), (1.0, 0.5)):
        store = LocalStore(tmp_path / str(focal[0]))
        item = replace(make_item(store, ("google.display.upload.160x600",), headline="", cta=""), focal=focal)
        (row,) = export_assets([item], store, placements, formats=("png",), workers=1)
        shas.append(row["sha256"])
    assert shas[0] != shas[1]  # left edge vs right edge of the 1:1 render


def test_text_that_does_not_fit_holds_the_file_for_review_the_same_on_a_rerun(store, placements):
    item = make_item(store, ("google.display.upload.320x50", "meta.feed.square"), headline="Incomprehensibilities" * 4)
    first = export_assets([item], store, placements, formats=("webp",), workers=1)
    held, shipped = first
    assert held["placement"] == "google.display.upload.320x50" and held["status"] == "review"
    assert "does not fit" in held["error"] and "minimum legible size" in held["error"] and held["bytes"] == 0
    assert not store.exists(held["path"]) and shipped["status"] == "exported"
    again = export_assets([item], store, placements, formats=("webp",), workers=1)
    assert list(map(manifest_row, again)) == list(map(manifest_row, first))
    assert held_for_review(first) == {("pack-01", 1): f"google.display.upload.320x50: {held['error']}"}


def test_a_rerun_fits_texts_again_only_for_files_not_exported_from_the_same_inputs(store, placements, monkeypatch):
    import exports.stage as stage

    sizes = ("google.display.upload.320x50", "meta.feed.square")
    write_manifests(store, "spring", export_assets([make_item(store, sizes)], store, placements, formats=("webp",),
                                                   workers=1))
    fitted: list[str] = []
    real = stage.overlay_problems
    monkeypatch.setattr(stage, "overlay_problems", lambda placement, **kw: fitted.append(placement.id) or real(
        placement, **kw))
    again = export_assets([make_item(store, sizes)], store, placements, formats=("webp",), workers=1)
    assert fitted == [] and [r["rewritten"] for r in again] == ["", ""] and {r["status"] for r in again} == {"exported"}
    longer = export_assets([make_item(store, sizes, headline="Incomprehensibilities" * 4)], store, placements,
                           formats=("webp",), workers=1)
    assert sorted(fitted) == sorted(sizes)  # the copy changed: each file's texts are fitted again
    held, shipped = longer
    assert held["status"] == "review" and "does not fit" in held["error"] and not store.exists(held["path"])
    assert shipped["status"] == "exported" and shipped["rewritten"] == "copy changed"


def test_a_rerun_reads_and_hashes_each_kept_file_once(store, placements, monkeypatch):
    import hashlib

    import exports.stage as stage

    sizes = ("google.display.upload.320x50", "meta.feed.square")
    first = export_assets([make_item(store, sizes)], store, placements, formats=("webp", "jpeg"), workers=1)
    write_manifests(store, "spring", first)
    files = {store.get(r["path"]) for r in first}
    hashed: list[bytes] = []
    real = stage.sha256_hex
    monkeypatch.setattr(stage, "sha256_hex", lambda data: hashed.append(data) or real(data))
    again = export_assets([make_item(store, sizes)], store, placements, formats=("webp", "jpeg"), workers=1)
    assert [r["rewritten"] for r in again] == [""] * 4
    assert sorted(d for d in hashed if d in files) == sorted(files)  # verified once, not hashed again for the row
    assert [(r["sha256"], r["width"], r["height"]) for r in again] == [
        (hashlib.sha256(store.get(r["path"])).hexdigest(), r["width"], r["height"]) for r in first]


def test_each_item_is_drawn_in_its_own_overlay_style_and_a_broken_font_fails_only_its_item(tmp_path, placements):
    import numpy as np
    from dataclasses import replace

    from exports.overlay import OverlayStyle
    from store.local import LocalStore

    store = LocalStore(tmp_path / "out")
    pid = "google.display.upload.300x250"
    broken_font = tmp_path / "broken.ttf"
    broken_font.write_bytes(b"not a font")
    items = [replace(make_item(store, (pid,), asset="blue-01"), overlay=OverlayStyle(cta_colour=(0, 0, 255))),
             make_item(store, (pid,), asset="plain-01"),
             replace(make_item(store, (pid,), asset="font-01"), overlay=OverlayStyle(font=broken_font))]
    rows = {r["asset_id"]: r for r in export_assets(items, store, placements, formats=("png",), workers=1)}

    def blue_pixels(asset_id: str) -> int:
        with Image.open(io.BytesIO(store.get(rows[asset_id]["path"]))) as image:
            return int((np.asarray(image.convert("RGB")) == (0, 0, 255)).all(axis=-1).sum())

    assert blue_pixels("blue-01") > 500 and blue_pixels("plain-01") == 0  # the CTA button
    failed = rows["font-01"]
    assert failed["status"] == "failed" and not store.exists(failed["path"])
    assert f"overlay font {broken_font} of font-01 cannot be used" in failed["error"]


def test_any_size_placement_keeps_the_render_whole(store, placements):
    """google.dv360.image sets only a maximum: the nearest-square render, uncropped, unscaled."""
    item = make_item(store, ("google.dv360.image", "meta.feed.sqaure"), headline="", cta="")
    rows = {r["placement"]: r for r in export_assets([item], store, placements, formats=("upload",), workers=1)}
    row = rows["google.dv360.image"]
    assert row["status"] == "exported" and (row["width"], row["height"]) == (128, 128)
    with Image.open(io.BytesIO(store.get(row["path"]))) as image:
        assert image.size == (128, 128) and image.format == "JPEG"
    assert "did you mean 'meta.feed.square'" in rows["meta.feed.sqaure"]["error"]


def test_an_auto_approved_item_with_held_files_goes_back_to_review(tmp_path):
    from qa import QAResult
    from review.queue import ReviewQueue
    from tests.exports.conftest import make_job

    queue = ReviewQueue(f"sqlite:///{tmp_path / 'review.sqlite3'}")
    try:
        items = {}
        for asset, verdict in (("pack-01", "pass"), ("pack-02", "review")):
            jobs = [make_job(a, asset=asset) for a in ("1:1", "9:16")]
            items[asset] = queue.enqueue(jobs, {j.key: QAResult(j.key, verdict, (), {}) for j in jobs})
        auto = items["pack-01"]
        assert auto.state == "approved" and auto.approved_by == "qa-auto"
        assert queue.hold_for_review(auto.id, "meta.stories: cta 'Shop' does not fit")
        again = queue.item(auto.id)
        assert again.state == "queued" and again.approval_id is None and again.version == auto.version + 1
        last = queue.decisions(auto.id)[-1]
        assert (last.decision, last.reason, last.note) == ("requeue", "overlay", "meta.stories: cta 'Shop' does not fit")
        assert not queue.hold_for_review(auto.id, "again")  # not approved any more: nothing to do
        human = queue.decide(items["pack-02"].id, "kim", "approve", expected_version=items["pack-02"].version)
        assert not queue.hold_for_review(human.id, "x") and queue.item(human.id).state == "approved"  # it stands
    finally:
        queue.close()
