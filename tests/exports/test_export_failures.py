"""What `run` and `export` report as failures: every export file that failed (which file, why),
and every placement left without a file the platform accepts for upload (JPEG/PNG)."""

from __future__ import annotations

import dataclasses

from tests.exports.conftest import make_item

from exports.placements import load_placements
from exports.stage import export_assets, export_failure_lines
from qa.verdicts import QAResult, qa_error_lines

PLACEMENT = "meta.feed.square"


def _capped(placements: dict, cap: int) -> dict:
    return {**placements, PLACEMENT: dataclasses.replace(placements[PLACEMENT], max_bytes=cap)}


def test_every_failed_file_is_one_line_naming_it(store) -> None:
    placements = _capped(load_placements(), 300)  # no JPEG of the square fits 300 bytes
    item = make_item(store, (PLACEMENT, "meta.stories"), headline="", cta="")
    rows = export_assets([item], store, placements, formats=("jpeg", "png", "upload"), workers=1)
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["placement"] for r in failed} == {PLACEMENT} and len(failed) == 2
    lines = export_failure_lines(rows, placements, ("jpeg", "png", "upload"))
    for row in failed:
        assert any(line.startswith(f"export failed: {row['path']}: ") and "300" in line for line in lines), lines
    assert any(line.startswith("no uploadable file: pack-01 v1") and PLACEMENT in line for line in lines), lines
    assert not any("meta.stories" in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_a_placement_without_an_upload_format_file_fails_even_if_other_formats_exported(store) -> None:
    placements = _capped(load_placements(), 45_000)  # webp fits, the square's JPEG does not
    item = make_item(store, (PLACEMENT,), headline="", cta="")
    rows = export_assets([item], store, placements, formats=("webp", "upload"), workers=1)
    assert {r["format"]: r["status"] for r in rows} == {"webp": "exported", "jpeg": "failed"}
    lines = export_failure_lines(rows, placements, ("webp", "upload"))
    assert len(lines) == 2 and lines[1].startswith("no uploadable file: pack-01 v1 has no jpeg/png export")


def test_no_failures_no_lines(store) -> None:
    placements = load_placements()
    item = make_item(store, (PLACEMENT, "meta.stories"))
    rows = export_assets([item], store, placements, formats=("webp", "upload"), workers=1)
    assert export_failure_lines(rows, placements, ("webp", "upload")) == []


def test_qa_errors_are_one_line_each_naming_the_render() -> None:
    broken = QAResult("a" * 64, "review", ("check_error:clip", "palette_uncertain"), {},
                      {"error:clip": "RuntimeError: weights missing"})
    missing = QAResult("b" * 64, "review", ("render_missing",), {}, {"render": f"renders/{'b' * 64}.png: gone"})
    clean = QAResult("c" * 64, "pass", (), {})
    sampled = QAResult("d" * 64, "review", ("sampled",), {})
    assert qa_error_lines([broken, missing, clean, sampled]) == [
        f"QA error: check clip failed on renders/{'a' * 64}.png: RuntimeError: weights missing",
        f"QA error: render missing: renders/{'b' * 64}.png: gone",
    ]
