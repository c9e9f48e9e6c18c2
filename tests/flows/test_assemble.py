"""The plain glue the flow uses: which renders make an asset variant, and its verdict."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.assemble import renders_by_asset, resolve_paths, variant_verdict
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet
from qa import QAResult
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


def test_renders_by_asset_groups_aspects_per_variant(plan):
    groups = renders_by_asset(plan, {j.key for j in plan.jobs})
    assert sorted(groups) == [("a1", 1), ("a1", 2)]
    assert set(groups[("a1", 1)]) == {"1:1", "9:16"}
    missing_one = {j.key for j in plan.jobs} - {plan.jobs[0].key}
    assert set(renders_by_asset(plan, missing_one)[("a1", 1)]) == {"9:16"}


def test_variant_verdict_is_the_worst_and_missing_results_need_review(plan):
    jobs = plan.jobs[:2]
    result = lambda job, verdict: QAResult(job.key, verdict, (), {})  # noqa: E731
    assert variant_verdict(jobs, {j.key: result(j, "pass") for j in jobs}) == "pass"
    assert variant_verdict(jobs, {jobs[0].key: result(jobs[0], "pass"), jobs[1].key: result(jobs[1], "review")}) == "review"
    assert variant_verdict(jobs, {jobs[0].key: result(jobs[0], "fail"), jobs[1].key: result(jobs[1], "review")}) == "fail"
    assert variant_verdict(jobs, {jobs[0].key: result(jobs[0], "pass")}) == "review"  # fail closed


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
