"""Hostile asset ids and sheet names: refused per row, and nothing lands outside --out."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from exports.encode import FORMATS
from exports.stage import ExportItem, export_key
from plan.planner import plan_campaign
from plan.sheet import Sheet, SheetRow, read_sheet
from store.base import check_key
from store.local import LocalStore

HOSTILE_IDS = [
    "../escape", "../../etc/passwd", "a/../../b", "/etc/passwd", "/tmp/x", "C:\\Windows\\x", "..\\x", "..",
    ".hidden", "-rf", "_x", "a/b", "a\\b", "a b", "a\x00b", "x" * 101, "t\u0435nt",  # Cyrillic е
    "ｔｅｎｔ", "tent\u200b", "\u202etxt.exe", "CON", "nul.txt", "com1", "LPT9.png", "tent\n", "~root",
]


def _sheet(tmp_path: Path, rows: list[list[str]], name: str = "sheet.csv") -> Path:
    text = io.StringIO()
    csv.writer(text).writerows([["asset_id", "style", "product", "scene", "variants"], *rows])
    path = tmp_path / name
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize("asset_id", HOSTILE_IDS)
def test_hostile_asset_ids_refuse_their_row_only(tmp_path, settings_, asset_id):
    if asset_id in ("a\x00b", "tent\n"):  # the sheet reader refuses NUL itself and strips cells: test the rule
        sheet = Sheet(tmp_path / "s.csv", ("asset_id", "style", "product", "scene"), (
            SheetRow(2, {"asset_id": asset_id, "style": "acme@2", "product": "a tent", "scene": "a meadow"}),
            SheetRow(3, {"asset_id": "ok-3", "style": "acme@2", "product": "a tent", "scene": "a meadow"})))
    else:
        sheet = read_sheet(_sheet(tmp_path, [[asset_id, "acme@2", "a tent", "a meadow", "1"],
                                             ["ok-3", "acme@2", "a tent", "a meadow", "1"]]))
    plan = plan_campaign(sheet, settings_)
    assert [r.asset_id for r in plan.rows] == ["ok-3"]
    assert {j.row_key for j in plan.jobs} == {"ok-3"}
    assert [(p.row, p.column) for p in plan.problems][:1] == [(2, "asset_id")]
    assert "\n" not in str(plan.problems[0])


def test_variant_suffix_and_letter_case_collisions_are_refused(tmp_path, settings_):
    plan = plan_campaign(read_sheet(_sheet(tmp_path, [
        ["tent", "acme@2", "a tent", "a meadow", "2"],      # writes tent, tent-v2
        ["tent-v2", "acme@2", "a tent", "a meadow", "1"],   # would overwrite tent's variant 2
        ["Tent", "acme@2", "a tent", "a meadow", "1"],      # same file as tent on macOS/Windows
        ["tent-v3", "acme@2", "a tent", "a meadow", "1"],   # fine: tent has 2 variants
    ])), settings_)
    assert [r.asset_id for r in plan.rows] == ["tent", "tent-v3"]
    assert [(p.row, p.column) for p in plan.problems] == [(3, "asset_id"), (4, "asset_id")]
    assert "'tent-v2' is already used by row 2" in str(plan.problems[0])
    assert "'Tent' is already used by row 2 ('tent')" in str(plan.problems[1])


@pytest.mark.parametrize("stem", ["..", "...", "_hidden", "-rf", ".env", "a" * 300, "../../x", "ünïcødé 📦", "\x00",
                                  "con", "spring launch (final)"])
def test_campaign_names_from_hostile_file_names_are_store_safe(tmp_path, stem):
    campaign = Sheet(tmp_path / f"{stem}.csv", (), ()).campaign
    assert check_key(campaign) == campaign and campaign not in (".", "..") and len(campaign) <= 100


def test_every_planned_export_file_stays_inside_out(tmp_path, settings_):
    """The whole chain: sheet row -> planned asset id -> export key -> LocalStore path."""
    out = tmp_path / "out"
    store = LocalStore(out)
    plan = plan_campaign(read_sheet(_sheet(tmp_path, [["a" * 100, "acme@2", "a tent", "a meadow", "8"],
                                                      ["A.b_c-9", "acme@2", "a tent", "a meadow", "1"]],
                                           name="..strange name.csv")), settings_)
    assert plan.problems == [] and len(plan.rows) == 2
    for row in plan.rows:
        for variant in range(1, row.variants + 1):
            item = ExportItem(campaign=plan.campaign, asset_id=row.asset_id, row=row.row, variant=variant,
                              placements=row.placements, renders={}, qa_verdict="pass", approval_id="1",
                              approved_by="qa-auto", alt_text=row.alt_text)
            for placement in row.placements:
                for fmt in FORMATS:
                    key = export_key(item, placement, fmt)
                    assert store.put(key, b"x")
                    written = (out / key).resolve()
                    assert written.is_relative_to(out.resolve()) and written.is_file()
    names = [p for p in out.rglob("*") if p.is_file()]
    assert len(names) == (8 + 1) * 3 * len(FORMATS)
    assert all(os.path.commonpath([out, p]) == str(out) for p in names)
