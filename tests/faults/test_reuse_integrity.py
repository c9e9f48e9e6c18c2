"""Reuse verifies integrity: a stored render is checked against the sha256 its sidecar recorded
before a run, QA or an export reuses it. A whole PNG that is not the one rendered (swapped,
restored from elsewhere) is rendered again, never scored or exported, and no manifest records
its hash as good."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from tests.render.jobs import make_job

from exports.placements import load_placements
from exports.stage import ExportItem, export_assets
from render.devices import device_settings
from render.stage import _store_render, render_key, render_missing, sidecar_key, verified_render
from store import LocalStore


@pytest.fixture
def swapped(tmp_path: Path):
    """Two jobs of one size rendered; then job 0's PNG is replaced by job 1's (a whole PNG)."""
    store = LocalStore(tmp_path / "out")
    jobs = [make_job(i, width=32, height=32, steps=1) for i in range(2)]
    assert render_missing(jobs, store, device="cpu").rendered == [j.key for j in jobs]
    (tmp_path / "out" / render_key(jobs[0].key)).write_bytes(store.get(render_key(jobs[1].key)))
    return store, jobs


def test_a_swapped_render_is_rendered_again(swapped) -> None:
    store, jobs = swapped
    report = render_missing(jobs, store, device="cpu")
    assert report.cached == [jobs[1].key] and report.rendered == [jobs[0].key]
    assert "does not match the sha256 its sidecar recorded" in report.damaged[jobs[0].key]
    assert verified_render(store, jobs[0].key) != store.get(render_key(jobs[1].key))


def test_qa_fails_a_swapped_render(swapped) -> None:
    from qa.stage import _load

    store, jobs = swapped
    image, finding = _load(jobs[0].key, store)
    assert image is None and finding.fail == ("render_undecodable",)
    assert "does not match the sha256" in finding.details["render"]


def test_an_export_of_a_swapped_render_fails_and_records_no_hash(swapped) -> None:
    store, jobs = swapped
    item = ExportItem(campaign="camp", asset_id="tent-01", row=2, variant=1, placements=("meta.feed.square",),
                      renders={"1:1": jobs[0]}, qa_verdict="pass", approval_id="a", approved_by="dana", alt_text="")
    rows = export_assets([item], store, load_placements(), formats=("webp",), workers=1)
    assert [(r["status"], r["sha256"]) for r in rows] == [("failed", "")]
    assert "does not match the sha256" in rows[0]["error"]
    assert not store.exists(rows[0]["path"])


def test_a_lost_race_records_the_kept_png_hash(tmp_path: Path) -> None:
    """Two runs store one job: the PNG first stored stays, and the sidecar names its hash."""
    store = LocalStore(tmp_path / "out")
    job = make_job(0, width=32, height=32, steps=1)
    render_missing([job], store, device="cpu")
    first = store.get(render_key(job.key))
    other = np.full((32, 32, 3), 90, dtype=np.uint8)  # another device's pixels for the same job
    assert _store_render(store, job, other, device_settings("cpu"), 0.1) is False
    assert store.get(render_key(job.key)) == first
    assert json.loads(store.get(sidecar_key(job.key)))["sha256"] == hashlib.sha256(first).hexdigest()
    assert render_missing([job], store, device="cpu").cached == [job.key]
