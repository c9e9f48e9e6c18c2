"""Review previews are the export itself at preview scale: made by the export's drawing code,
equal to a PNG export decoded and scaled the same way, keyed by what shapes the pixels (a copy
edit draws a new one, an approval does not), with the file's weight (real, else an estimate)
and the warnings the export would act on."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from tests.exports.conftest import make_item

from exports.manifest import read_manifest, write_manifests
from exports.placements import load_placements
from exports.preview import PREVIEW_SIDE, at_preview_scale, placement_previews, preview_size
from exports.stage import export_assets
from store import keys

SQUARE, STORY, BANNER = "meta.feed.square", "meta.stories", "google.display.upload.320x50"


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(at_preview_scale(image), dtype=np.int16)


def test_preview_size_scales_down_to_the_longer_side_and_never_up():
    assert preview_size(1080, 1920) == (270, 480) and preview_size(1200, 628) == (480, 251)
    assert preview_size(300, 250) == (300, 250) and preview_size(4000, 1) == (480, 1)


def test_a_preview_equals_the_png_export_at_preview_scale_and_webp_within_its_codec(store):
    placements = load_placements()
    item = make_item(store, (SQUARE, STORY))
    previews = placement_previews(item, placements, item.placements, store)
    assert [p.placement for p in previews] == [SQUARE, STORY] and not any(p.error for p in previews)
    rows = export_assets([item], store, placements, formats=("png", "webp"), workers=1)
    for preview in previews:
        shown = _pixels(store.get(keys.preview_key(preview.digest)))
        assert shown.shape[:2] == preview.preview[::-1] and max(shown.shape) == PREVIEW_SIDE
        png = next(r for r in rows if r["placement"] == preview.placement and r["format"] == "png")
        assert np.array_equal(_pixels(store.get(png["path"])), shown)  # lossless: exactly the same pixels
        webp = next(r for r in rows if r["placement"] == preview.placement and r["format"] == "webp")
        # lossy WebP at quality 90, then averaged down ~2-4x by Lanczos: well under 2 levels on average
        assert np.abs(_pixels(store.get(webp["path"])) - shown).mean() < 2.0


def test_previews_are_drawn_again_only_when_their_pixels_change(store):
    placements = load_placements()
    item = make_item(store, (SQUARE,))
    (first,) = placement_previews(item, placements, item.placements, store)
    stored = store.get(keys.preview_key(first.digest))
    store.put(keys.preview_key(first.digest), b"cached", overwrite=True)  # a redraw would overwrite this
    (again,) = placement_previews(dataclasses.replace(item, approval_id="rev-other", approved_by="lee"),
                                  placements, item.placements, store)
    assert again.digest == first.digest and store.get(keys.preview_key(first.digest)) == b"cached"
    (edited,) = placement_previews(dataclasses.replace(item, headline="Pack light"), placements, item.placements,
                                   store)
    assert edited.digest != first.digest
    assert not np.array_equal(_pixels(store.get(keys.preview_key(edited.digest))), _pixels(stored))


def test_a_preview_shows_the_exported_files_bytes_or_an_estimate_against_the_cap(store):
    placements = load_placements()
    item = make_item(store, (SQUARE,))
    (before,) = placement_previews(item, placements, item.placements, store)
    assert before.files == () and before.estimate.estimate_format == "jpeg"
    assert 0 < before.estimate.estimate_bytes < before.cap == placements[SQUARE].max_bytes
    rows = export_assets([item], store, placements, formats=("jpeg", "webp"), workers=1)
    write_manifests(store, "spring", rows)
    (after,) = placement_previews(item, placements, item.placements, store, read_manifest(store, "spring"))
    assert {(f.format, f.bytes) for f in after.files} == {(r["format"], r["bytes"]) for r in rows}
    assert after.estimate is None
    (edited,) = placement_previews(dataclasses.replace(item, headline="Pack light"), placements, item.placements,
                                   store, read_manifest(store, "spring"))
    assert edited.files == () and edited.estimate is not None  # those files show the old headline


def test_a_preview_warns_of_what_the_export_would_hold_or_soften(store):
    placements = load_placements()
    item = make_item(store, (BANNER, SQUARE), headline="Incomprehensibilities" * 4)
    banner, square = placement_previews(item, placements, item.placements, store)
    assert banner.held and any("held at export" in w and "headline" in w for w in banner.warnings)
    assert any("above the style's max_upscale of 1.25x" in w for w in square.warnings)  # 128 px to 1080 px
    assert banner.digest  # still drawn: the designer sees what the problem is


def test_a_rejected_or_unknown_placement_is_still_listed(store):
    placements = load_placements()
    item = make_item(store, (SQUARE,))
    rejection = {"reason": "bad_crop", "by": "dana"}
    listed = placement_previews(item, placements, (SQUARE, "meta.nope"), store, rejected={SQUARE: rejection})
    assert listed[0].rejection == rejection and listed[0].digest
    assert "unknown placement 'meta.nope'" in listed[1].error


def test_the_safe_zone_is_given_as_shares_of_the_placement(store):
    (story,) = placement_previews(make_item(store, (STORY,)), load_placements(), (STORY,), store)
    assert story.safe_zone == pytest.approx((269 / 1920, 0, 384 / 1920, 0))


def test_the_review_server_never_runs_the_upscaler_and_says_so_until_an_export_did(store):
    from render.upscale import upscaler_spec

    placements = load_placements()
    item = dataclasses.replace(make_item(store, (SQUARE,)), max_upscale=1.25,
                               upscaler=upscaler_spec("brandbatch/tiny-esrgan", None, None))
    (before,) = placement_previews(item, placements, item.placements, store)
    assert any("without the upscaler brandbatch/tiny-esrgan" in w for w in before.warnings)
    assert not list(store.list("upscaled"))  # the preview ran no model
    (row,) = export_assets([item], store, placements, formats=("png",), workers=1)  # the export makes the copy
    assert list(store.list("upscaled"))
    (after,) = placement_previews(item, placements, item.placements, store)
    assert not any("without the upscaler" in w for w in after.warnings) and after.digest != before.digest
    assert np.array_equal(_pixels(store.get(row["path"])), _pixels(store.get(keys.preview_key(after.digest))))


def test_the_grids_hero_preview_is_drawn_without_weighing_its_file(store):
    from exports.preview import placement_preview

    placements = load_placements()
    item = make_item(store, (SQUARE,))
    hero = placement_preview(item, placements[SQUARE], store, weigh=False)
    assert hero.digest and hero.estimate is None
    assert not store.exists(keys.preview_record_key(hero.digest))
    (weighed,) = placement_previews(item, placements, item.placements, store)
    assert weighed.digest == hero.digest and weighed.estimate.estimate_bytes > 0
