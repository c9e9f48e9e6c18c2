"""The plain glue the flow uses: which renders make an asset variant, and its verdict."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.assemble import asset_snapshot, assets_key, export_items, load_assets, resolve_paths
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet
from review.approvals import auto_approval

PLACEMENTS = {"meta.feed.square": (1080, 1080), "meta.stories": (1080, 1920)}


@pytest.fixture
def plan(repo: Path, tmp_path: Path):
    sheet = tmp_path / "camp.csv"
    sheet.write_text("asset_id,style,product,scene,variants,placements\n"
                     "a1,acme@2,tent,lake,2,meta.feed.square;meta.stories\n", encoding="utf-8")
    settings = PlanSettings(styles_dir=repo / "styles", templates_dir=repo / "templates" / "prompts",
                            placements=PLACEMENTS, today=dt.date(2026, 11, 23))
    return plan_campaign(read_sheet(sheet), settings)


def test_export_items_come_from_approvals_and_the_asset_snapshot(plan, tmp_path):
    from review.queue import ApprovedVariant
    from store import open_store

    store = open_store(str(tmp_path / "out"))
    store.put(assets_key(plan.campaign), asset_snapshot(plan))
    assert asset_snapshot(plan) == asset_snapshot(plan)
    assets = load_assets(store, plan.campaign)
    v2 = {j.aspect: j for j in plan.jobs if j.variant == 2}
    approved = [ApprovedVariant(plan.campaign, "a1", 2, 2, v2, "review", "appr-1", "dana"),
                ApprovedVariant(plan.campaign, "gone", 3, 1, v2, "pass", "appr-2", "qa-auto")]
    (item,) = export_items(plan.campaign, approved, assets)
    assert (item.asset_id, item.variant, item.approved_by, item.qa_verdict) == ("a1", 2, "dana", "review")
    assert item.placements == ("meta.feed.square", "meta.stories") and item.renders == v2
    assert item.alt_text == plan.rows[0].prompt


def test_load_assets_names_the_missing_campaign(tmp_path):
    from store import open_store

    with pytest.raises(FileNotFoundError, match="brandbatch run"):
        load_assets(open_store(str(tmp_path)), "nope")


def test_auto_approval_only_for_passes_and_stable():
    first = auto_approval("c", "a1", 1, ["k2", "k1"], "pass")
    assert first == auto_approval("c", "a1", 1, ["k1", "k2"], "pass")
    assert first.approved_by == "qa-auto" and first.approval_id.startswith("auto-")
    assert auto_approval("c", "a1", 1, ["k1"], "review") is None


def test_resolve_paths_prefers_explicit_then_env_then_cwd(tmp_path, monkeypatch, repo):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BRANDBATCH_STYLES", raising=False)
    assert resolve_paths().styles == repo / "styles"
    (tmp_path / "styles").mkdir()
    assert resolve_paths().styles == tmp_path / "styles"
    monkeypatch.setenv("BRANDBATCH_STYLES", "/somewhere")
    assert resolve_paths().styles == Path("/somewhere")
    assert resolve_paths("mine").styles == Path("mine")
