"""What designers decide per placement and per text reaches the files: a rejected placement is
not exported (its earlier files are withdrawn, its manifest row says who rejected it and why),
a restored one ships again, and an edited headline re-exports only that item's files with the
override in the manifest."""

from __future__ import annotations

import json

from tests.exports.conftest import make_item

from exports.assemble import export_items
from exports.manifest import manifest_csv, write_manifests
from exports.placements import load_placements
from exports.stage import export_assets, export_failure_lines, refuse_banned_text
from review.queue import ApprovedVariant
from store.documents import AssetRecord

SQUARE, STORY = "meta.feed.square", "meta.stories"
REJECTION = {"reason": "text_too_small", "note": "headline unreadable", "by": "dana", "at": "2026-11-30T19:00:00+00:00"}
EDIT = {"before": "Go further", "after": "Pack light", "by": "lee", "at": "2026-11-30T19:01:00+00:00"}


def _approved(item, **kw) -> ApprovedVariant:
    return ApprovedVariant(item.campaign, item.asset_id, item.row, item.variant, item.renders, item.qa_verdict,
                           item.approval_id, item.approved_by, **kw)


def _asset(item) -> AssetRecord:
    return AssetRecord(row=item.row, placements=[SQUARE, STORY], alt_text=item.alt_text, headline=item.headline,
                       cta=item.cta)


def test_export_items_take_the_designers_copy_and_set_rejected_placements_apart(store):
    item = make_item(store, (SQUARE, STORY))
    approved = _approved(item, rejected_placements={STORY: REJECTION}, overrides={"headline": EDIT})
    (exported,) = export_items("spring", [approved], {item.asset_id: _asset(item)})
    assert exported.placements == (SQUARE,)
    assert exported.rejected == {STORY: "rejected by dana: text_too_small (headline unreadable)"}
    assert (exported.headline, exported.cta, exported.alt_text) == ("Pack light", item.cta, item.alt_text)
    (plain,) = export_items("spring", [_approved(item)], {item.asset_id: _asset(item)})
    assert plain.placements == (SQUARE, STORY) and plain.headline == "Go further" and plain.rejected == {}


def test_a_placement_rejected_after_export_is_withdrawn_and_restored_later(store):
    placements = load_placements()
    item = make_item(store, (SQUARE, STORY))
    assets = {item.asset_id: _asset(item)}
    first = export_assets([item], store, placements, formats=("webp",), workers=1)
    write_manifests(store, "spring", first, approved={(item.asset_id, item.variant)})
    story = next(r["path"] for r in first if r["placement"] == STORY)
    square = next(r for r in first if r["placement"] == SQUARE)
    assert store.exists(story)

    (rejected,) = export_items("spring", [_approved(item, rejected_placements={STORY: REJECTION})], assets)
    rows = export_assets([rejected], store, placements, formats=("webp", "upload"), workers=1)
    merged = write_manifests(store, "spring", rows, approved={(item.asset_id, item.variant)})
    assert not store.exists(story)  # shipped before the designer rejected it: not any more
    assert not [r for r in merged if r["placement"] == STORY and r["status"] != "rejected"]
    (row,) = [r for r in merged if r["placement"] == STORY]
    assert (row["status"], row["error"]) == ("rejected", "rejected by dana: text_too_small (headline unreadable)")
    kept = next(r for r in rows if r["placement"] == SQUARE and r["format"] == "webp")
    assert (kept["sha256"], kept["rewritten"]) == (square["sha256"], "")  # the rest ships as it was
    assert export_failure_lines(rows, placements, ("webp", "upload")) == []  # a rejection is no failure
    assert b"rejected,rejected by dana" in manifest_csv(merged)

    rows = export_assets([item], store, placements, formats=("webp",), workers=1)
    merged = write_manifests(store, "spring", rows, approved={(item.asset_id, item.variant)})
    assert store.exists(story) and {r["status"] for r in merged} == {"exported"}


def test_an_edited_headline_re_exports_only_that_items_files(store):
    placements = load_placements()
    one = make_item(store, (SQUARE,), asset="pack-01")
    two = make_item(store, (SQUARE,), asset="pack-02")
    assets = {i.asset_id: _asset(i).model_copy(update={"placements": [SQUARE]}) for i in (one, two)}
    first = export_assets(export_items("spring", [_approved(one), _approved(two)], assets), store, placements,
                          formats=("webp",), workers=1)
    write_manifests(store, "spring", first)
    items = export_items("spring", [_approved(one, overrides={"headline": EDIT}), _approved(two)], assets)
    rows = export_assets(items, store, placements, formats=("webp",), workers=1)
    merged = write_manifests(store, "spring", rows)
    by_asset = {r["asset_id"]: r for r in rows}
    assert by_asset["pack-01"]["rewritten"] == "copy changed" and by_asset["pack-01"]["headline"] == "Pack light"
    assert by_asset["pack-02"]["rewritten"] == ""
    stored = {r["asset_id"]: r for r in json.loads(store.get("spring/manifest.json"))}
    assert stored["pack-01"]["overrides"] == {"headline": {"before": "Go further", "after": "Pack light", "by": "lee"}}
    assert "overrides" not in stored["pack-02"] and merged == list(stored.values())


def test_an_edited_headline_is_checked_again_at_export_against_the_styles_terms_now(store):
    item = make_item(store, (SQUARE, STORY))
    (edited,) = export_items("spring", [_approved(item, overrides={"headline": EDIT})], {item.asset_id: _asset(item)})
    passed, rows = refuse_banned_text([edited], lambda job: ("light",))  # a term the style banned since the edit
    assert passed == [] and {r["placement"] for r in rows} == {SQUARE, STORY}
    assert all("headline: banned term 'light'" in r["error"] for r in rows)
