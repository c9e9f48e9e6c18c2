"""Placement presets: built from the researched specs, validated on load, user file merged over."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exports.placements import PRESETS, Placement, SafeZone, load_placements
from plan.errors import InputError

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "ad-platform-specs.yaml"


def test_bundled_presets_load_with_sources():
    placements = load_placements()
    assert len(placements) >= 50
    for pid, p in placements.items():
        assert isinstance(p, Placement) and p.id == pid
        assert p.source and set(p.upload_formats) <= {"jpeg", "png"} and p.upload_formats
        assert p.safe_zone.left + p.safe_zone.right < p.width and p.safe_zone.top + p.safe_zone.bottom < p.height
    stories = placements["meta.stories"]
    assert (stories.width, stories.height, stories.max_bytes) == (1080, 1920, 30 * 1024 * 1024)
    assert stories.safe_zone == SafeZone(top=269, right=0, bottom=384, left=0)
    assert placements["google.display.upload.300x250"].max_bytes == 150 * 1024
    assert placements["google.display.upload.300x250"].upload_formats == ("jpeg", "png")


@pytest.mark.skipif(not SPECS.is_file(), reason="shared research file not in this checkout")
def test_every_sized_placement_of_the_research_is_a_preset():
    specs = yaml.safe_load(SPECS.read_text())["placements"]
    placements = load_placements()
    for spec in specs:
        if spec["width"] and spec["height"]:
            p = placements[spec["id"]]
            assert (p.width, p.height, p.max_bytes, p.source) == (
                spec["width"], spec["height"], spec["max_bytes"], spec["source"])


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
    )
    placements = load_placements(extra)
    assert placements["meta.stories"].max_bytes == 500000 and placements["meta.stories"].width == 1080
    hero = placements["shop.hero"]
    assert hero.upload_formats == ("png", "jpeg") and hero.safe_zone == SafeZone(left=100)
    assert hero.max_bytes is None
    assert len(placements) == len(load_placements()) + 1


@pytest.mark.parametrize(("entry", "message"), [
    ("{id: shop.x, platform: P, name: N, width: -5, height: 10, upload_formats: [jpeg], source: s}",
     "placements[0] (shop.x).width: Input should be greater than or equal to 1 but is -5"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [webp], source: s}",
     "placements[0] (shop.x).upload_formats.0: Input should be 'jpeg' or 'png' but is 'webp'"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s, colour: red}",
     "placements[0] (shop.x).colour: unknown key (allowed: id, platform"),
    ("{id: shop.x, platform: P, name: N, width: 10, upload_formats: [png], source: s}",
     "placements[0] (shop.x).height: required key is missing"),
    ("{id: shop.x, platform: P, name: N, width: 10, height: 10, upload_formats: [png], source: s,"
     " safe_zone: {top: 6, bottom: 4}}", "leaves no room in 10x10"),
    ("{id: meta.stories, max_bytes: '5MB'}", "placements[0] (meta.stories).max_bytes: Input should be a valid"
     " integer but is '5MB'"),
    ("just-a-string", "placements[0]: must be a mapping with a string 'id' but is 'just-a-string'"),
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
