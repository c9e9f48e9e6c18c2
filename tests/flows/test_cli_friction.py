"""What a new user tripped over on the command line, each answered with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exports.assemble import missing_campaign, plan_settings
from exports.manifest import withdrawal_note
from exports.stage import run_formats
from flows.cli import app
from plan.planner import plan_campaign
from plan.sheet import read_sheet
from render.registry import model_family
from store import open_store

SHEET = "asset_id,style,product,scene\ntent-01,acme@2,a tent,a meadow\nboot-02,{style},hiking boots,a trail\n"


def sheet(tmp_path: Path, style: str = "acme@2") -> Path:
    path = tmp_path / "camp.csv"
    path.write_text(SHEET.format(style=style), encoding="utf-8")
    return path


def test_a_model_of_another_family_is_refused_by_validate_naming_both_families(tmp_path: Path, repo: Path):
    runner = CliRunner()
    mismatch = runner.invoke(app, ["validate", str(sheet(tmp_path)), "--model", "brandbatch/tiny-sdxl"])
    assert mismatch.exit_code == 1, mismatch.output
    lines = mismatch.stdout.splitlines()
    assert len(lines) == 2 and all(":style: --model brandbatch/tiny-sdxl is a model of family sdxl but style acme@2 "
                                   "is made for family sd" in line for line in lines), lines
    same = runner.invoke(app, ["validate", str(sheet(tmp_path)), "--model", "brandbatch/tiny-sd"])
    assert same.exit_code == 0, same.output
    settings, _ = plan_settings(model="brandbatch/tiny-sdxl")  # run plans with the same check
    assert {p.code for p in plan_campaign(read_sheet(sheet(tmp_path)), settings).problems} == {"model_family_mismatch"}


def test_the_family_of_a_model_is_read_from_its_name_or_its_folder(tmp_path: Path):
    assert model_family("brandbatch/tiny-sdxl") == "sdxl" and model_family("brandbatch/tiny-sd-inpaint") == "sd"
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}), encoding="utf-8")
    assert model_family(str(folder)) == "flux"
    assert model_family("owner/unknown-model", "a" * 40) is None  # cannot tell without loading: not refused


def test_jpg_is_accepted_as_jpeg_and_unknown_formats_name_the_allowed_ones():
    assert run_formats(["jpg", "WEBP", "jpeg", " png "]) == ["jpeg", "webp", "png"]
    with pytest.raises(ValueError, match="webp, avif, jpeg, png, upload but are .*'gif'.*jpg means jpeg"):
        run_formats(["gif"])
    refused = CliRunner().invoke(app, ["export", "camp", "--formats", "gif"])
    assert refused.exit_code == 2 and "jpg means jpeg" in refused.output


def test_styles_diff_of_identical_versions_says_so():
    result = CliRunner().invoke(app, ["styles", "diff", "acme@2", "acme@2"])
    assert result.exit_code == 0 and result.stdout == "acme@2 and acme@2 are identical\n"
    changed = CliRunner().invoke(app, ["styles", "diff", "acme@2", "acme@4"])
    assert changed.stdout.startswith("--- acme@2\n+++ acme@4\n")


@pytest.mark.parametrize("command", [["validate", "SHEET"], ["styles", "list"], ["styles", "show", "acme@2"]])
def test_a_missing_styles_folder_is_named_once_instead_of_every_style_being_unknown(tmp_path: Path, command):
    args = [str(sheet(tmp_path)) if a == "SHEET" else a for a in command]
    result = CliRunner().invoke(app, [*args, "--styles", str(tmp_path / "stlyes")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"{tmp_path / 'stlyes'}: the style library folder does not exist (named by "
                                          "--styles or $BRANDBATCH_STYLES; default ./styles, else the bundled styles)"]


def test_export_names_a_missing_styles_folder_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from store.keys import assets_key

    out = tmp_path / "out"
    open_store(str(out)).put(assets_key("camp"), b"{}")  # a campaign is there: the export reads the styles next
    monkeypatch.setenv("BRANDBATCH_STYLES", str(tmp_path / "stlyes"))
    result = CliRunner().invoke(app, ["export", "camp", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"{tmp_path / 'stlyes'}: the style library folder does not exist (named by "
                                          "--styles or $BRANDBATCH_STYLES; default ./styles, else the bundled styles)"]


def test_a_deprecated_style_recommends_the_newest_approved_version_not_a_draft(tmp_path: Path, repo: Path):
    library = tmp_path / "styles"
    (library / "acme").mkdir(parents=True)
    for version in (1, 2, 3):  # deprecated, approved, draft
        shutil.copy(repo / "styles" / "acme" / f"v{version}.yaml", library / "acme" / f"v{version}.yaml")
    result = CliRunner().invoke(app, ["validate", str(sheet(tmp_path, "acme@1")), "--styles", str(library)])
    (line,) = result.stdout.splitlines()
    assert line.endswith(":3:style: style acme@1 was deprecated on 2026-06-30; use acme@2 (the newest approved "
                         "version)"), line


def test_withdrawn_exports_are_counted_with_the_reason_and_the_way_around_it():
    before = {f"camp/exports/{p}/tent-01.webp": {"asset_id": "tent-01", "variant": 1} for p in ("a", "b")}
    before["camp/exports/a/boot-02.webp"] = {"asset_id": "boot-02", "variant": 1}
    assert withdrawal_note(before, before) == ""
    note = withdrawal_note(before, {"camp/exports/a/boot-02.webp": {}})
    assert note.startswith("withdrawn: 2 export files of 1 asset variant were deleted because their approval no "
                           "longer holds (their inputs changed")
    assert "another --out" in note
    assert withdrawal_note(before, {p: {} for p in list(before)[1:]}).startswith(
        "withdrawn: 1 export file of 1 asset variant was deleted")


def test_the_files_written_are_counted_by_reason_in_words_that_fit_any_count():
    from flows.cli import _rewritten

    assert _rewritten({}) == ""
    assert _rewritten({"new file": 30}) == " (30 written; new file: 30)"
    assert _rewritten({"copy changed": 2, "new file": 1}) == " (3 written; copy changed: 2, new file: 1)"


def test_a_mistyped_campaign_gets_one_line_with_did_you_mean(tmp_path: Path):
    from review.queue import ReviewQueue
    from store.documents import AssetSnapshot
    from exports.assemble import save_assets
    from plan.jobs import RenderJob

    out = str(tmp_path / "out")
    store = open_store(out)
    save_assets(store, "spring-launch", AssetSnapshot(assets={}))
    job = RenderJob(campaign="spring-launch", row_key="tent-01", row=2, variant=1, aspect="1:1", width=64, height=64,
                    prompt="a tent", negative_prompt="", model_id="brandbatch/tiny-sd", model_revision="builtin-1",
                    model_family="sd", scheduler="euler", steps=2, guidance=5.0, seed=1, style="acme", style_version=2)
    queue = ReviewQueue.for_out(out)
    try:
        queue.enqueue([job], {})
    finally:
        queue.close()
    assert missing_campaign(store, out, "spring-launch") is None
    assert missing_campaign(store, out, "sprng-launch") == f"no campaign 'sprng-launch' in {out}; did you mean " \
                                                          "spring-launch?"
    result = CliRunner().invoke(app, ["export", "sprng-launch", "--out", out])
    assert result.exit_code == 1 and result.output.splitlines() == [
        f"no campaign 'sprng-launch' in {out}; did you mean spring-launch?"]
    assert not (tmp_path / "out" / "sprng-launch").exists()  # nothing made for the mistyped name
    assert "campaigns there: spring-launch" in missing_campaign(store, out, "autumn")
