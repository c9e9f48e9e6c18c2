"""Placement presets: built from the researched specs, validated on load, user file merged over."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from exports.placements import (PRESETS, Placement, SafeZone, describe, load_placements, select, sized_for,
                                summary_line, unknown_placement)
from plan.errors import InputError

SPECS = next((path for path in (Path(__file__).resolve().parents[2].parent / "shared" / "ad-platform-specs.yaml",
                                Path("/work/shared/ad-platform-specs.yaml")) if path.is_file()),
             Path("ad-platform-specs.yaml"))


def test_bundled_presets_load_with_sources():
    placements = load_placements()
    assert len(placements) >= 50
    for pid, p in placements.items():
        assert isinstance(p, Placement) and p.id == pid
        assert p.source and set(p.upload_formats) <= {"jpeg", "png"} and p.upload_formats
        assert isinstance(p.checked, dt.date) and dt.date(2025, 1, 1) <= p.checked <= dt.date.today()
        assert p.safe_zone.left + p.safe_zone.right < p.width and p.safe_zone.top + p.safe_zone.bottom < p.height
    stories = placements["meta.stories"]
    assert (stories.width, stories.height, stories.max_bytes) == (1080, 1920, 30 * 1024 * 1024)
    assert stories.safe_zone == SafeZone(top=269, right=0, bottom=384, left=0)
    assert placements["google.display.upload.300x250"].max_bytes == 150 * 1024
    assert placements["google.display.upload.300x250"].upload_formats == ("jpeg", "png")


@pytest.mark.skipif(not SPECS.is_file(), reason="shared research file not in this checkout")
def test_every_placement_of_the_research_is_a_preset():
    specs = yaml.safe_load(SPECS.read_text())["placements"]
    placements = load_placements()
    for spec in specs:
        if spec["id"] == "amazon.dsp.rec.sizes":  # a list of sizes: one preset each (test below)
            continue
        p = placements[spec["id"]]
        assert (p.max_bytes, p.source) == (spec["max_bytes"], spec["source"]), spec["id"]
        if spec["width"] and spec["height"]:
            assert (p.width, p.height) == (spec["width"], spec["height"]), spec["id"]
        if spec["formats"]:  # what brandbatch writes of what the platform takes; Google stays JPEG/PNG
            taken = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}
            assert set(p.upload_formats) == {taken[f] for f in spec["formats"] if f in taken}, spec["id"]


def test_the_three_placements_without_a_fixed_size():
    placements = load_placements()
    dv360 = placements["google.dv360.image"]
    assert dv360.any_size and (dv360.width, dv360.height, dv360.max_bytes) == (4096, 4096, 10 * 1024 * 1024)
    assert dv360.upload_formats == ("jpeg", "png")
    profile = placements["tiktok.profile_image"]
    assert profile.width == profile.height and profile.max_bytes == 50 * 1024 and not profile.any_size
    logo = placements["amazon.brand_logo"]
    assert (logo.width, logo.height) == (600, 600) == (logo.min_width, logo.min_height)
    assert all(p.upload_formats in (("jpeg", "png"), ("png", "jpeg"))
               for pid, p in placements.items() if pid.startswith("google."))


@pytest.mark.parametrize(("size", "expected"), [((1024, 1024), (1024, 1024)), ((768, 1344), (768, 1344)),
                                                ((8192, 2048), (4096, 1024)), ((2048, 6000), (1398, 4096))])
def test_any_size_keeps_the_render_size_within_the_maximum(size, expected):
    placements = load_placements()
    sized = sized_for(placements["google.dv360.image"], size)
    assert (sized.width, sized.height) == expected and sized.id == "google.dv360.image"
    assert sized_for(placements["meta.stories"], size) is placements["meta.stories"]


def test_unknown_ids_get_the_closest_ones():
    known = load_placements()
    assert unknown_placement("meta.feed.sqaure", known).startswith(
        "unknown placement 'meta.feed.sqaure' (did you mean 'meta.feed.square'")
    assert "did you mean" not in unknown_placement("zzz", known)
    assert "brandbatch placements list" in unknown_placement("zzz", known)


def test_select_by_platform_and_describe():
    placements = load_placements()
    tiktok = select(placements, "TikTok")
    assert [p.id for p in tiktok] == sorted(pid for pid in placements if pid.startswith("tiktok."))
    assert {p.id for p in select(placements, "display & video")} == {"google.dv360.image"}
    assert len(select(placements)) == len(placements)
    with pytest.raises(ValueError, match=r"no placements for platform 'tikok' \(did you mean 'tiktok'\?\); "
                                         r"platforms: amazon, google"):
        select(placements, "tikok")
    line = summary_line(placements["google.display.upload.300x250"]).split("\t")
    assert line[:5] == ["google.display.upload.300x250", "300x250", "153600 bytes", "jpeg,png", "checked 2026-11-23"]
    text = describe(placements["google.dv360.image"])
    assert "size: any up to 4096x4096\n" in text and "source: OFFICIAL https://support.google.com/displayvideo" in text
    assert "checked: 2026-11-23\n" in text


def test_placements_commands(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.delenv("BRANDBATCH_PLACEMENTS", raising=False)
    runner = CliRunner()
    listed = runner.invoke(app, ["placements", "list"])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == len(load_placements())
    meta = runner.invoke(app, ["placements", "list", "--platform", "meta"])
    assert meta.exit_code == 0 and all(line.startswith("meta.") for line in meta.stdout.splitlines())
    assert runner.invoke(app, ["placements", "list", "--platform", "nowhere"]).exit_code == 1
    shown = runner.invoke(app, ["placements", "show", "meta.stories"])
    assert shown.exit_code == 0 and "safe_zone: top 269, right 0, bottom 384, left 0 px" in shown.stdout
    typo = runner.invoke(app, ["placements", "show", "meta.storys"])
    assert typo.exit_code == 1 and "did you mean 'meta.stories'" in typo.stderr
    extra = tmp_path / "mine.yaml"
    extra.write_text("placements:\n- {id: meta.stories, checked: '2026-12-01'}\n")
    monkeypatch.setenv("BRANDBATCH_PLACEMENTS", str(extra))
    assert "checked: 2026-12-01" in runner.invoke(app, ["placements", "show", "meta.stories"]).stdout


def test_amazon_dsp_sizes_are_presets_without_a_stated_cap():
    amazon = {pid: p for pid, p in load_placements().items() if p.platform == "Amazon DSP"}
    assert len(amazon) == 13 and all(p.max_bytes is None and "advertising.amazon.com" in p.source
                                     for p in amazon.values())
    assert (amazon["amazon.dsp.rec.300x250"].width, amazon["amazon.dsp.rec.300x250"].height) == (300, 250)


def test_extra_file_overrides_keys_and_adds_presets(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "placements:\n"
        "- {id: meta.stories, max_bytes: 500000}\n"
        "- id: shop.hero\n  platform: Our shop\n  name: Home hero\n  width: 1600\n  height: 600\n"
        "  upload_formats: [png, jpeg]\n  safe_zone: {left: 100}\n  source: internal brief 2026-11\n"
        "  checked: '2026-11-20'\n"
    )
    placements = load_placements(extra)
    assert placements["meta.stories"].max_bytes == 500000 and placements["meta.stories"].width == 1080
    hero = placements["shop.hero"]
    assert hero.upload_formats == ("png", "jpeg") and hero.safe_zone == SafeZone(left=100)
    assert hero.max_bytes is None and hero.checked == dt.date(2026, 11, 20)
    assert len(placements) == len(load_placements()) + 1


@pytest.mark.parametrize(("entry", "message"), [
    ("{id: shop.x, platform: P, name: N, width: -5, height: 10, upload_formats: [jpeg], source: s, checked: 2026-01-01}",
     "placements[0] (shop.x).width: Input should be greater than or equal to 1 but is -5"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [webp], source: s, checked: 2026-01-01}",
     "placements[0] (shop.x).upload_formats.0: Input should be 'jpeg' or 'png' but is 'webp'"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s, checked: 2026-01-01, colour: red}",
     "placements[0] (shop.x).colour: unknown key (allowed: id, platform"),
    ("{id: shop.x, platform: P, name: N, width: 10, upload_formats: [png], source: s, checked: 2026-01-01}",
     "placements[0] (shop.x).height: required key is missing"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s, checked: 2026-01-01,"
     " safe_zone: {top: 6, bottom: 4}}", "leaves no room in 10x10"),
    ("{id: meta.stories, max_bytes: '5MB'}", "placements[0] (meta.stories).max_bytes: Input should be a valid"
     " integer but is '5MB'"),
    ("just-a-string", "placements[0]: must be a mapping with a string 'id' but is 'just-a-string'"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s}",
     "placements[0] (shop.x).checked: required key is missing"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s, checked: soon}",
     "placements[0] (shop.x).checked: Input should be a valid date"),
])
def test_bad_entries_name_file_key_and_value(tmp_path, entry, message):
    extra = tmp_path / "bad.yaml"
    extra.write_text(f"placements:\n- {entry}\n")
    with pytest.raises(InputError) as info:
        load_placements(extra)
    assert str(extra) in str(info.value) and message in str(info.value)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(InputError, match="placements file not found"):
        load_placements(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("placements: [\n")
    with pytest.raises(InputError, match="broken.yaml: not valid YAML"):
        load_placements(broken)
    broken.write_text("- id: x\n")
    with pytest.raises(InputError, match="must be a mapping with a 'placements:' list"):
        load_placements(broken)


def test_bundled_file_is_the_default():
    assert PRESETS.name == "platforms.yaml" and PRESETS.is_file()
