"""The plain glue the flow uses: which renders make an asset variant, and its verdict."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from exports.overlay import DEFAULT_FONT, OverlayStyle
from exports.assemble import asset_snapshot, export_items, load_assets, resolve_paths, save_assets
from plan.errors import InputError
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet
from plan.styles import load_style_file
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


def test_export_items_come_from_approvals_and_the_asset_snapshot(plan, tmp_path, repo):
    from review.queue import ApprovedVariant
    from store import open_store

    store = open_store(str(tmp_path / "out"))
    save_assets(store, plan.campaign, asset_snapshot(plan, repo / "styles"))
    assert asset_snapshot(plan, repo / "styles") == asset_snapshot(plan, repo / "styles")
    assets = load_assets(store, plan.campaign)
    v2 = {j.aspect: j for j in plan.jobs if j.variant == 2}
    approved = [ApprovedVariant(plan.campaign, "a1", 2, 2, v2, "review", "appr-1", "dana"),
                ApprovedVariant(plan.campaign, "gone", 3, 1, v2, "pass", "appr-2", "qa-auto")]
    (item,) = export_items(plan.campaign, approved, assets)
    assert (item.asset_id, item.variant, item.approved_by, item.qa_verdict) == ("a1", 2, "dana", "review")
    assert item.placements == ("meta.feed.square", "meta.stories") and item.renders == v2
    assert item.alt_text == plan.rows[0].prompt
    assert (item.overlay, item.focal, item.logo) == (OverlayStyle(), None, "")  # acme@2 sets none


def test_the_styles_overlay_focal_hint_and_logo_reach_the_export_items(repo, tmp_path):
    from review.queue import ApprovedVariant

    folder = tmp_path / "styles" / "acme"
    folder.mkdir(parents=True)
    shutil.copy(repo / "styles" / "acme" / "logo.png", folder / "logo.png")
    shutil.copy(DEFAULT_FONT, folder / "brand.ttf")
    style = yaml.safe_load((repo / "styles" / "acme" / "v3.yaml").read_text(encoding="utf-8"))
    style |= {"overlay": {"font": "brand.ttf", "weight": 400, "cta_colour": "#29335c", "align": "right"},
              "focal": [0.25, 0.75], "logo": "logo.png"}
    (folder / "v3.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    sheets = tmp_path / "sheets"
    (sheets / "art").mkdir(parents=True)
    shutil.copy(repo / "styles" / "acme" / "logo.png", sheets / "art" / "partner.png")
    sheet = sheets / "camp.csv"
    sheet.write_text("asset_id,style,product,scene,placements,logo\n"
                     "a1,acme@3,tent,lake,meta.feed.square,\n"
                     "a2,acme@3,tent,lake,meta.feed.square,art/partner.png\n"
                     "a3,acme@3,tent,lake,meta.feed.square,../camp.csv\n"
                     "a4,acme@3,tent,lake,meta.feed.square,art/missing.png\n", encoding="utf-8")
    settings = PlanSettings(styles_dir=tmp_path / "styles", templates_dir=repo / "templates" / "prompts",
                            placements=PLACEMENTS, allow_draft=True, today=dt.date(2026, 11, 23))
    plan = plan_campaign(read_sheet(sheet), settings)
    assert [(p.row, p.column) for p in plan.problems] == [(4, "logo"), (5, "logo")]
    assert "must be a .png/.jpg/.jpeg/.webp file path" in plan.problems[0].message
    assert f"no such file in {sheets}" in plan.problems[1].message

    assets = asset_snapshot(plan, tmp_path / "styles").assets
    approved = [ApprovedVariant(plan.campaign, row.asset_id, row.row, 1,
                                {j.aspect: j for j in plan.jobs if j.row_key == row.asset_id}, "pass", "x", "qa-auto")
                for row in plan.rows]
    first, second = export_items(plan.campaign, approved, assets)
    assert first.overlay == second.overlay == OverlayStyle(font=(folder / "brand.ttf").resolve(), weight=400,
                                                           cta_colour=(0x29, 0x33, 0x5C), align="right")
    assert first.focal == second.focal == (0.25, 0.75)
    assert first.logo == str((folder / "logo.png").resolve())
    assert second.logo == str((sheets / "art" / "partner.png").resolve())  # the sheet's column wins


def test_a_style_with_bad_export_keys_is_refused_naming_each_key(repo, tmp_path):
    folder = tmp_path / "acme"
    folder.mkdir()
    style = yaml.safe_load((repo / "styles" / "acme" / "v3.yaml").read_text(encoding="utf-8"))
    style |= {"overlay": {"font": "fonts/none.ttf", "cta_colour": "navy", "align": "middle", "size": 3},
              "focal": [0.5, 1.5], "logo": "/etc/logo.png"}
    (folder / "v3.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_style_file(folder / "v3.yaml")
    messages = sorted(p.message for p in caught.value.problems)
    assert messages == sorted([
        f"overlay.font: no such file in {folder} but is 'fonts/none.ttf'",
        "overlay.cta_colour: must be a '#RRGGBB' hex colour but is 'navy'",
        "overlay.align: Input should be 'left', 'center' or 'right' but is 'middle'",
        "overlay.size: unknown key (allowed keys: see README 'Styles')",
        "focal.1: Input should be less than or equal to 1 but is 1.5",
        "logo: must be a .png/.jpg/.jpeg/.webp file path relative to the folder but is '/etc/logo.png'",
    ])


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


def test_the_banned_checker_takes_the_style_versions_a_run_read_and_reads_the_brand_files_now(plan, tmp_path, repo):
    """A run hands the export its plan's style versions: their files are not read again, the
    banned-terms files are (a term added there now counts); other versions are read from disk."""
    from exports.assemble import banned_checker

    styles = tmp_path / "styles"
    shutil.copytree(repo / "styles", styles)
    job = plan.jobs[0]
    ref = f"{job.style}@{job.style_version}"
    known = {ref: load_style_file(styles / job.style / f"v{job.style_version}.yaml")}
    before = banned_checker(styles)(job)
    (styles / job.style / f"v{job.style_version}.yaml").write_text("not: [a style", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):  # without the run's copy the file is read
        banned_checker(styles)(job)
    assert banned_checker(styles, known)(job) == before
    with (styles / "banned-terms.txt").open("a", encoding="utf-8") as terms:
        terms.write("\nzeppelin\n")
    assert "zeppelin" in banned_checker(styles, known)(job) and "zeppelin" not in before
