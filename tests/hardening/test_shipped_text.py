"""Every text that ships passes the banned-term rules, whatever its column, at planning and
again at export; every text a text encoder reads is held to that encoder's limit (CLIP 77,
T5 256 for SD3 / 512 for FLUX) and a job that would be cut fails instead of rendering."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from tests.exports.conftest import make_item
from tests.render.jobs import make_job

from exports.stage import refuse_banned_text
from plan.errors import InputError
from plan.planner import PlanSettings, plan_campaign
from plan.sheet import read_sheet
from plan.styles import load_style_file
from render.stage import render_key, render_missing

HEADER = "asset_id,style,product,scene,placements,alt_text,headline,cta,mood,offer"
GOOD = ["tent-01", "acme@2", "a green tent", "a lakeside meadow", "meta.feed.square", "A tent by a lake",
        "Sleep outside", "Shop now", "calm", "two for one"]
COLUMNS = HEADER.split(",")
# Where a banned term can hide in each free-text column (style and placements name real things).
BANNED_IN = {
    "asset_id": "gun-01", "alt_text": "A tent for a celebrity", "headline": "Miracle tent", "cta": "Cure boredom",
    "mood": "nude calm", "offer": "a free gun", "product": "a ｇun tent", "scene": "a c\u200belebrity meadow",
}


@pytest.fixture
def store(tmp_path: Path):
    from store import LocalStore

    return LocalStore(tmp_path / "out")


def _sheet(tmp_path: Path, values: list[str]) -> Path:
    path = tmp_path / "camp.csv"
    path.write_text(HEADER + "\n" + ",".join(values) + "\n", encoding="utf-8")
    return path


def test_a_clean_row_plans(tmp_path: Path, settings_: PlanSettings) -> None:
    plan = plan_campaign(read_sheet(_sheet(tmp_path, GOOD)), settings_)
    assert not plan.problems and len(plan.rows) == 1


@pytest.mark.parametrize("column", sorted(BANNED_IN))
def test_a_banned_term_in_any_column_refuses_the_row(tmp_path: Path, settings_: PlanSettings, column: str) -> None:
    values = list(GOOD)
    values[COLUMNS.index(column)] = BANNED_IN[column]
    plan = plan_campaign(read_sheet(_sheet(tmp_path, values)), settings_)
    assert plan.rows == [] and plan.jobs == []
    assert any(p.column == column and p.code == "banned_term" for p in plan.problems), plan.problems


@pytest.mark.parametrize("field", ["asset_id", "headline", "cta", "alt_text"])
def test_export_checks_the_shipped_texts_again(store, field: str) -> None:
    """A term banned after the run (or a snapshot edited since) stops the export of that item."""
    item = make_item(store, ("meta.feed.square", "meta.stories"))
    bad = dataclasses.replace(item, **{field: "tent-gun" if field == "asset_id" else "the gun tent"})
    clean = make_item(store, ("meta.feed.square",), asset="clean-02")
    passed, rows = refuse_banned_text([bad, clean], lambda job: ("gun",))
    assert passed == [clean]
    assert [(r["placement"], r["status"]) for r in rows] == [("meta.feed.square", "failed"), ("meta.stories", "failed")]
    assert all(f"{field}: banned term 'gun'" in r["error"] for r in rows)


def test_export_fails_closed_when_the_terms_cannot_be_read(store) -> None:
    item = make_item(store, ("meta.feed.square",))

    def unreadable(job):
        raise InputError(["styles/acme/v2.yaml: cannot be read"])
    passed, rows = refuse_banned_text([item], unreadable)
    assert passed == [] and "banned terms cannot be checked" in rows[0]["error"]


def test_a_negative_prompt_over_77_clip_tokens_refuses_the_style(tmp_path: Path, repo: Path) -> None:
    style = yaml.safe_load((repo / "styles" / "acme" / "v2.yaml").read_text(encoding="utf-8"))
    folder = tmp_path / "acme"
    folder.mkdir()
    (folder / "logo.png").write_bytes((repo / "styles" / "acme" / "logo.png").read_bytes())
    style["negative_prompt"] = ", ".join(["blurry watermark"] * 40)
    (folder / "v2.yaml").write_text(yaml.safe_dump(style), encoding="utf-8")
    with pytest.raises(InputError, match=r"negative_prompt: is \d+ CLIP tokens; the text encoder reads at most 77"):
        load_style_file(folder / "v2.yaml")


LONG_CLIP = "a red hiking boot " + " ".join(f"detail{n}" for n in range(80))  # > 77 CLIP tokens
LONG_T5 = "a red hiking boot " + "-" * 300  # 27 CLIP tokens, > 256 T5 tokens


@pytest.mark.parametrize(("family", "field", "text", "encoder"), [
    ("sd", "prompt", LONG_CLIP, "CLIP"),
    ("sd", "negative_prompt", LONG_CLIP, "CLIP"),
    ("sdxl", "prompt", LONG_CLIP, "CLIP"),
    ("sd3", "prompt", LONG_T5, "T5"),
    ("sd3", "negative_prompt", LONG_T5, "T5"),
    ("flux", "prompt", LONG_CLIP, "CLIP"),
])
def test_a_text_an_encoder_would_cut_fails_its_job(tmp_path: Path, family: str, field: str, text: str,
                                                    encoder: str) -> None:
    from store import LocalStore

    store = LocalStore(tmp_path / "out")
    fine = make_job(1, family, width=32, height=32, steps=1)
    cut = dataclasses.replace(make_job(2, family, width=32, height=32, steps=1), **{field: text})
    report = render_missing([fine, cut], store, device="cpu")
    assert report.rendered == [fine.key]
    [failure] = report.failed
    assert failure.job_key == cut.key and failure.reason == "prompt_too_long"
    assert f"for the {encoder} text encoder" in failure.message and "would be cut" in failure.message
    assert not store.exists(render_key(cut.key))
