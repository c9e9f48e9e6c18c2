"""Streaming stages (pipeline.stream): a campaign run whose QA, queueing and export overlap its
rendering gives what the stages run one after the other give: renders, QA records, queue,
manifest and export files (their pixels and XMP: C2PA signatures are salted); and a row is
checked, queued and exported before the rows after it are rendered."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from exports.assemble import asset_snapshot, plan_settings, save_assets
from flows.campaign import campaign_batch
from pipeline.stream import CampaignStream, settled_rows
from plan.planner import plan_campaign
from plan.sheet import read_sheet
from qa import run_qa
from qa.report import THUMB_QUALITY, THUMB_SIZE
from render.stage import render_missing
from review.queue import ReviewQueue
from store import LocalStore
from store.keys import thumbnail_key

pytestmark = pytest.mark.slow

SIGNED = ("sha256", "bytes")  # differ from run to run with the C2PA salt


def write_project(root: Path, repo: Path) -> tuple[Path, Path]:
    """acme@2 (4 aspect ratios, CLIP checks) and acme@5 (creative families: a master outpainted)
    at 64 px and 2 steps; 3 rows of 2 variants, with headlines and CTAs."""
    styles = root / "styles"
    shutil.copytree(repo / "styles", styles)
    for version in (2, 5):
        path = styles / "acme" / f"v{version}.yaml"
        style = yaml.safe_load(path.read_text(encoding="utf-8"))
        style["model"]["resolution"], style["steps"] = 64, 2
        if version == 2:  # CLIP scores and safety (the tiny model), computed in the stream's QA process
            style["qa"].update(clip_model="brandbatch-tiny-clip", min_clip_score=0.0, clip_uncertainty=0.0,
                               unsafe_threshold=1.0, unsafe_uncertainty=0.0, duplicate_cosine=1.0)
        path.write_text(yaml.safe_dump(style), encoding="utf-8")
    sheet = root / "stream.csv"
    sheet.write_text("asset_id,style,product,scene,variants,headline,cta,placements\n"
                     "pack-01,acme@2,a trail pack,an alpine meadow,2,Go further,Shop now,meta.feed.square;meta.stories\n"
                     "tent-02,acme@5,a green tent,a lakeside camp,2,Sleep outside,Explore,meta.feed.square;meta.stories\n"
                     "flask-03,acme@2,a steel flask,a desert road,2,Stay cool,Buy,meta.feed.square\n",
                     encoding="utf-8")
    return sheet, styles


def run(sheet: Path, styles: Path, out: Path, monkeypatch: pytest.MonkeyPatch, stream: bool):
    monkeypatch.setenv("BRANDBATCH_STREAM", "1" if stream else "0")
    return campaign_batch(sheet=str(sheet), out=str(out), styles=str(styles), formats=["webp", "upload"])


def outcome(out: Path) -> dict:
    """Everything a run leaves that must not depend on streaming."""
    def content(path: Path) -> str:
        with Image.open(path) as image:
            return hashlib.sha256(image.tobytes() + repr(image.getxmp()).encode()).hexdigest()

    manifest = json.loads((out / "stream" / "manifest.json").read_text(encoding="utf-8"))
    queue = ReviewQueue.for_out(out)
    try:
        items = [(i.id, i.state, i.verdict, i.approval_id, i.approved_by, json.dumps(i.job_keys, sort_keys=True))
                 for i in queue.items("stream")]
    finally:
        queue.close()
    return {
        "renders": {p.name: p.read_bytes() for p in sorted((out / "renders").glob("*.png"))},
        "qa": {p.name: p.read_bytes() for p in sorted((out / "qa").glob("*.json"))},
        "manifest": [{k: v for k, v in row.items() if k not in SIGNED} for row in manifest],
        "files": {row["path"]: content(out / row["path"]) for row in manifest if row["status"] == "exported"},
        "on_disk": sorted(p.relative_to(out).as_posix() for p in (out / "stream" / "exports").rglob("*") if p.is_file()),
        "queue": sorted(items),
    }


def test_streaming_run_equals_the_stages_one_after_the_other(tmp_path: Path, repo: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    sheet, styles = write_project(tmp_path, repo)
    sequential = run(sheet, styles, tmp_path / "sequential", monkeypatch, stream=False)
    streaming = run(sheet, styles, tmp_path / "streaming", monkeypatch, stream=True)
    expected = outcome(tmp_path / "sequential")
    assert expected["files"] and "approved" in {item[1] for item in expected["queue"]}
    assert outcome(tmp_path / "streaming") == expected
    for field in ("jobs", "rendered", "cached", "failed", "verdicts", "exported", "rewritten", "queued", "held",
                  "qa_errors", "export_failures", "upscale_warnings"):
        assert getattr(streaming, field) == getattr(sequential, field), field
    opened: list[str] = []
    real_init = ReviewQueue.__init__
    monkeypatch.setattr(ReviewQueue, "__init__", lambda queue, url, *args, **kwargs: opened.append(url) or real_init(
        queue, url, *args, **kwargs))
    again = run(sheet, styles, tmp_path / "streaming", monkeypatch, stream=True)  # resume: nothing to do
    assert (again.rendered, again.cached, again.rewritten) == (0, sequential.jobs, {})
    assert len(opened) == 1  # one review queue for the whole run (each open checks and migrates it)
    assert outcome(tmp_path / "streaming") == expected


def test_a_row_is_checked_queued_and_exported_while_later_rows_still_render(tmp_path: Path, repo: Path):
    sheet, styles = write_project(tmp_path, repo)
    settings, placements = plan_settings(str(styles))
    plan = plan_campaign(read_sheet(str(sheet)), settings)
    store = LocalStore(tmp_path / "out")
    save_assets(store, plan.campaign, asset_snapshot(plan, settings.styles_dir))  # as the flow's plan task
    render_missing(plan.jobs, store, batch_size=4, device="cpu")
    rows = list(dict.fromkeys(job.row_key for job in plan.jobs))
    queue = ReviewQueue.for_out(tmp_path / "out")
    stream = CampaignStream(plan, plan.jobs, store, str(tmp_path / "out"), queue, placements=placements,
                            formats=["webp"], styles_dir=settings.styles_dir, export=True, workers=1, depth=1)
    try:
        for job in plan.jobs:
            if job.row_key == rows[0]:
                stream.done(job.key)
        deadline = time.monotonic() + 120
        while rows[0] not in stream.streamed.rows and time.monotonic() < deadline:  # the others are not done
            time.sleep(0.1)
        assert list(stream.streamed.rows) == [rows[0]], "the first row is checked before the others finish"
        stream.rendering()  # the later rows are checked in the QA process
        for job in plan.jobs:
            if job.row_key != rows[0]:
                stream.done(job.key)
        streamed = stream.finish()
    finally:
        stream.close()
        queue.close()
    assert set(streamed.rows) == set(rows) == settled_rows(plan.jobs, streamed)
    shutil.rmtree(tmp_path / "out" / "qa" / "embeddings")  # CLIP's image embeddings computed again, here
    whole = run_qa(plan.jobs, store, plan.styles())
    assert [streamed.results[r.job_key] for r in whole] == whole, \
        "row by row, here and in the QA process, gives the campaign's QA"
    assert streamed.exports, "approved variants were exported while rendering"
    for (asset_id, _variant), (_identity, made) in streamed.exports.items():
        assert {r["asset_id"] for r in made} == {asset_id} and all(r["status"] == "exported" for r in made)
    later = [(key, made) for key, (_identity, made) in streamed.exports.items() if key[0] != rows[0]]
    thumbnails = [*(f"render:{job.key}" for job in plan.jobs if job.row_key != rows[0]),
                  *(f"file:{row['sha256']}" for _key, made in later for row in made)]
    assert later and all(store.exists(thumbnail_key(source, THUMB_SIZE, THUMB_QUALITY)) for source in thumbnails), \
        "the report's thumbnails of the rows checked while rendering were made in the QA process"
