"""Designers decide, ``brandbatch export`` ships exactly what they approved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from review.queue import ReviewQueue
from tests.e2e.test_campaign_run import brandbatch

pytestmark = pytest.mark.slow

SHEET = """asset_id,style,product,scene,placements
tent-01,acmereview@1,a green tent,a lakeside meadow,meta.feed.square
boots-02,acmereview@1,hiking boots,a rocky river,meta.feed.square
"""


@pytest.fixture
def workdir(tmp_path: Path, repo: Path, prefect_home: Path) -> Path:
    shutil.copytree(repo / "styles", tmp_path / "styles")
    style = yaml.safe_load((repo / "styles" / "acme" / "v2.yaml").read_text(encoding="utf-8"))
    # Every render lands in the palette's uncertainty band: a designer must look at it.
    style |= {"name": "acmereview", "version": 1,
              "qa": {**style["qa"], "palette_min_share": 0.5, "palette_uncertainty": 0.5, "review_sample_rate": 0}}
    (tmp_path / "styles" / "acmereview").mkdir()
    (tmp_path / "styles" / "acmereview" / "v1.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    (tmp_path / "camp.csv").write_text(SHEET, encoding="utf-8")
    return tmp_path


def manifest_assets(workdir: Path) -> set[str]:
    path = workdir / "out" / "camp" / "manifest.json"
    return {row["asset_id"] for row in json.loads(path.read_text(encoding="utf-8"))} if path.exists() else set()


def test_only_designer_approved_assets_are_exported(workdir: Path):
    run = brandbatch("run", "camp.csv", "--out", "out", "--formats", "webp", cwd=workdir)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 variants waiting for review; 0 export files" in run.stdout, run.stdout
    assert manifest_assets(workdir) == set()
    report = workdir / "out" / "camp" / "report.html"
    assert "Nothing exported yet" in report.read_text(encoding="utf-8")  # the run built the campaign page
    assert "Review queue: 2 queued" in report.read_text(encoding="utf-8")
    assert (workdir / "out" / "camp" / "report-plan.json").is_file()

    queue = ReviewQueue.for_out(workdir / "out")
    items = {item.asset_id: item for item in queue.items("camp")}
    assert {i.state for i in items.values()} == {"queued"}
    queue.decide(items["tent-01"].id, "dana", "approve", expected_version=items["tent-01"].version)
    queue.decide(items["boots-02"].id, "lee", "reject", "off_brand", expected_version=items["boots-02"].version)

    export = brandbatch("export", "camp", "--out", "out", "--formats", "webp", cwd=workdir)
    assert export.returncode == 0, export.stdout + export.stderr
    rows = json.loads((workdir / "out" / "camp" / "manifest.json").read_text(encoding="utf-8"))
    assert [(r["asset_id"], r["approved_by"], r["qa_verdict"]) for r in rows] == [("tent-01", "dana", "review")]
    assert (workdir / "out" / rows[0]["path"]).is_file()
    page = report.read_text(encoding="utf-8")  # the export rebuilt the campaign page: the new file, its approver
    assert "What ships (1 placements)" in page and "<strong>tent-01</strong>" in page and "approved by dana" in page
    assert "1 approved, 1 rejected" in page and rows[0]["path"].removeprefix("camp/") in page

    # A later rejection withdraws the asset from the manifest and removes its files.
    tent = queue.item(items["tent-01"].id)
    queue.decide(tent.id, "dana", "reject", "off_brand", expected_version=tent.version)
    queue.close()
    again = brandbatch("export", "camp", "--out", "out", cwd=workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert manifest_assets(workdir) == set()
    assert not (workdir / "out" / rows[0]["path"]).exists()
    assert "What ships (0 placements)" in report.read_text(encoding="utf-8")


def test_a_rejected_placement_and_an_edited_headline_reach_brandbatch_export(workdir: Path):
    (workdir / "camp.csv").write_text("asset_id,style,product,scene,placements,headline\n"
                                      "tent-01,acmereview@1,a green tent,a lakeside meadow,"
                                      "meta.feed.square;meta.stories,Sleep outside\n", encoding="utf-8")
    run = brandbatch("run", "camp.csv", "--out", "out", "--formats", "webp", cwd=workdir)
    assert run.returncode == 0, run.stdout + run.stderr
    queue = ReviewQueue.for_out(workdir / "out")
    (tent,) = queue.items("camp")
    tent = queue.reject_placement(tent.id, "dana", "meta.stories", "bad_crop", "tent cut off",
                                  expected_version=tent.version)
    tent = queue.edit_copy(tent.id, "dana", "headline", "Sleep outside", "Wake up by the lake",
                           expected_version=tent.version)
    tent = queue.decide(tent.id, "dana", "approve", expected_version=tent.version)

    export = brandbatch("export", "camp", "--out", "out", "--formats", "webp", cwd=workdir)
    assert export.returncode == 0, export.stdout + export.stderr
    assert ("not shipped: camp/exports/meta.stories/tent-01: rejected by dana: bad_crop (tent cut off)"
            in export.stderr), export.stderr
    rows = {r["placement"]: r for r in json.loads((workdir / "out" / "camp" / "manifest.json").read_text("utf-8"))}
    assert rows["meta.stories"]["status"] == "rejected" and not (workdir / "out" / "camp" / "exports" / "meta.stories").exists()
    square = rows["meta.feed.square"]
    assert (square["status"], square["headline"]) == ("exported", "Wake up by the lake")
    assert square["overrides"] == {"headline": {"before": "Sleep outside", "after": "Wake up by the lake", "by": "dana"}}
    assert "Sleep outside" in (workdir / "camp.csv").read_text(encoding="utf-8")  # the sheet is never rewritten

    queue.restore_placement(tent.id, "lee", "meta.stories", expected_version=tent.version)
    queue.close()
    again = brandbatch("export", "camp", "--out", "out", "--formats", "webp", cwd=workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = {r["placement"]: r for r in json.loads((workdir / "out" / "camp" / "manifest.json").read_text("utf-8"))}
    assert rows["meta.stories"]["status"] == "exported" and (workdir / "out" / rows["meta.stories"]["path"]).is_file()
    assert rows["meta.feed.square"]["sha256"] == square["sha256"]  # the rest was not made again
