"""Properties of the path rules: store keys, asset ids and campaign names never leave --out."""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path, PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from exports.stage import ExportItem, export_key
from plan.planner import plan_campaign
from plan.sheet import Sheet, SheetRow
from store.base import check_key
from tests.hardening.conftest import bounded

ROOT = Path("/srv/out")
PATHY = st.text(alphabet=st.sampled_from(list("aZ09._-/\\:@=+ ~\x00\u0435ｔ\u202e\n")), max_size=30)
KEYS = st.one_of(st.text(max_size=30), PATHY, st.lists(st.sampled_from(["..", ".", "", "a", ".a", "a.b"]),
                                                        max_size=4).map("/".join))


def _inside(key: str) -> bool:
    """Whether ``key`` names something strictly below ROOT once '.' and '..' are resolved."""
    normal = PurePosixPath(posixpath.normpath(ROOT / key))
    return normal.is_relative_to(ROOT) and normal != ROOT


@bounded(400)
@given(KEYS)
def test_check_key_accepts_only_keys_inside_the_root(key):
    try:
        check_key(key)
    except ValueError:
        return
    assert _inside(key) and "\x00" not in key and "\\" not in key and not key.startswith("/")
    assert all(part and part not in (".", "..") for part in key.split("/"))


@bounded(150)
@given(asset_id=st.one_of(PATHY, st.text(max_size=110), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,110}", fullmatch=True)),
       variants=st.integers(1, 8))
def test_an_accepted_asset_id_gives_store_safe_export_keys(settings_, asset_id, variants):
    sheet = Sheet(Path("c.csv"), ("asset_id", "style", "product", "scene", "variants"), (SheetRow(2, {
        "asset_id": asset_id, "style": "acme@2", "product": "a tent", "scene": "a meadow", "variants": str(variants)}),))
    plan = plan_campaign(sheet, settings_)
    if not plan.rows:
        assert [p.column for p in plan.problems] == ["asset_id"]
        return
    item = ExportItem(campaign=plan.campaign, asset_id=asset_id, row=2, variant=1, placements=(), renders={},
                      qa_verdict="pass", approval_id="1", approved_by="a", alt_text="")
    for variant in range(1, variants + 1):
        key = export_key(dataclasses.replace(item, variant=variant), "meta.feed.square", "webp")
        assert check_key(key) == key and _inside(key)
        assert PurePosixPath(key).parent == PurePosixPath("c/exports/meta.feed.square")


@bounded(300)
@given(st.text(max_size=300))
def test_campaign_names_are_single_safe_key_parts(stem):
    campaign = Sheet(Path("/sheets") / f"{stem.replace('/', '_')}.csv", (), ()).campaign
    assert check_key(campaign) == campaign and "/" not in campaign and len(campaign) <= 100
