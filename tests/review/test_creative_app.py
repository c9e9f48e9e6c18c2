"""The review app shows the creative as it ships and takes decisions at its level: one preview
per placement (drawn by the export code), the grid's hero placement, rejecting one placement
with a reason, and copy edits checked like the sheet (length, banned terms, fonts) with each
problem naming the field, the value and what is allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.review.review_factories import CAMPAIGN, make_jobs, results_for
from tests.review.test_app import ORIGIN, app_for, login

from exports.assemble import save_assets
from render.stage import render_missing
from review.queue import Item, ReviewQueue
from store import LocalStore
from store.documents import AssetRecord, AssetSnapshot
from store.keys import preview_key

REPO = Path(__file__).resolve().parents[2]
PLACEMENTS = ["meta.feed.square", "meta.stories", "google.display.upload.300x250"]


@pytest.fixture
def item(out: Path, queue: ReviewQueue) -> Item:
    store = LocalStore(out)
    jobs = make_jobs("tent-02")
    assert not render_missing(jobs, store).failed  # the tiny offline model
    save_assets(store, CAMPAIGN, AssetSnapshot(assets={"tent-02": AssetRecord(
        row=2, placements=PLACEMENTS, alt_text="A green tent by a lake", headline="Sleep outside", cta="Shop now")}))
    return queue.enqueue(jobs, results_for(jobs))


@pytest.fixture
def client(out: Path, item: Item):
    with app_for(out) as c:
        yield c, login(c)


def post(client, csrf: str, item: Item, path: str, **fields):
    return client.post(f"/i/{item.id}/{path}", json=fields,
                       headers={**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"})


def test_the_item_page_shows_one_export_preview_per_placement(client, item: Item, out: Path) -> None:
    c, _csrf = client
    page = c.get(f"/i/{item.id}").text
    digests = [d for d in __import__("re").findall(r'src="/preview/([0-9a-f]{64})\.png"', page)]
    assert len(digests) == len(PLACEMENTS)
    for digest in digests:
        served = c.get(f"/preview/{digest}.png")
        assert served.status_code == 200 and served.content == LocalStore(out).get(preview_key(digest))
    assert "1080×1920" in page and "cap 30.0 MB" in page and "cap 150.0 KB" in page
    assert "estimate: unsigned encode, not exported yet" in page
    assert "above the style&#39;s max_upscale of 1.25x" in page  # 128 px renders in 1080 px placements
    assert 'class="safe-zone" hidden data-top="0.1401' in page  # meta.stories: 269 of 1920 px at the top
    assert c.get("/preview/" + "0" * 64 + ".png").status_code == 404
    assert c.get("/preview/..%2Fsecret.png").status_code == 404


def test_the_grid_shows_the_hero_placement_as_it_ships(client, item: Item, out: Path) -> None:
    c, _csrf = client
    assert f'src="/i/{item.id}/hero.png"' in c.get(f"/c/{CAMPAIGN}?state=all").text
    hero = c.get(f"/i/{item.id}/hero.png")
    assert hero.status_code == 200 and hero.headers["content-type"] == "image/png"
    page = c.get(f"/i/{item.id}").text
    first = __import__("re").search(r'src="/preview/([0-9a-f]{64})\.png"', page).group(1)
    assert hero.content == LocalStore(out).get(preview_key(first))  # meta.feed.square, the row's first


def test_one_placement_is_rejected_with_a_reason_and_shown(client, item: Item, queue: ReviewQueue) -> None:
    c, csrf = client
    done = post(c, csrf, item, "placement", placement="meta.stories", action="reject", reason="text_too_small",
                note="CTA unreadable", version=item.version)
    assert done.status_code == 200, done.text
    assert done.json()["rejected_placements"]["meta.stories"]["reason"] == "text_too_small"
    page = c.get(f"/i/{item.id}").text
    assert "Rejected by dana: text too small (CTA unreadable). It does not ship." in page
    assert "Approving ships 2 of 3 placements; rejected: meta.stories." in page
    assert "<td>meta.stories</td>" in page  # the history names the placement
    refused = post(c, csrf, item, "placement", placement="meta.nope", action="reject", reason="bad_crop",
                   version=done.json()["version"])
    assert refused.status_code == 400 and "not one of this creative's placements" in refused.json()["error"]
    assert post(c, csrf, item, "placement", placement="meta.stories", action="reject", reason="bad_crop",
                version=item.version).status_code == 409  # stale version
    assert queue.item(item.id).version == done.json()["version"]
    version = done.json()["version"]
    for pid in ("meta.feed.square", "google.display.upload.300x250"):
        version = post(c, csrf, item, "placement", placement=pid, action="reject", reason="off_brand",
                       version=version).json()["version"]
    assert "Every placement is rejected: approving ships nothing." in c.get(f"/i/{item.id}").text


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("headline", "Cheap tents today", ["headline: banned term 'cheap' in 'Cheap tents today'; allowed: text without "
                                       "the banned terms of style acme@2"]),
    ("cta", "x" * 1001, ["cta 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is 1001 characters; at "
                         "most 1000 are allowed (the sheet's limit)"]),
    ("alt_text", "  ", ["alt_text must not be empty: platforms read it out to people who cannot see the ad"]),
    ("headline", "Sleep \U0001F7E9 outside", ["no font"]),
    ("prompt", "a tent", ["field 'prompt' cannot be edited in review; allowed: headline, cta, alt_text"]),
])
def test_a_copy_edit_is_checked_like_the_sheet(client, item: Item, queue: ReviewQueue, field, value, expected) -> None:
    c, csrf = client
    refused = post(c, csrf, item, "copy", field=field, value=value, version=item.version)
    assert refused.status_code == 400
    problems = refused.json()["problems"]
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems, strict=True))
    assert queue.item(item.id).overrides == {} and queue.decisions(item.id) == []


def test_a_term_banned_while_the_server_runs_is_refused_in_the_next_copy_edit(out: Path, item: Item, tmp_path,
                                                                             monkeypatch) -> None:
    styles = tmp_path / "styles"
    shutil.copytree(REPO / "styles", styles)
    monkeypatch.setenv("BRANDBATCH_STYLES", str(styles))
    with app_for(out) as c:
        csrf = login(c)
        done = post(c, csrf, item, "copy", field="headline", value="Sleep by the lake", version=item.version)
        assert done.status_code == 200, done.text
        with (styles / "banned-terms.txt").open("a", encoding="utf-8") as terms:
            terms.write("lake\n")  # the brand bans a word while the server runs
        refused = post(c, csrf, item, "copy", field="headline", value="Wake by the lake",
                       version=done.json()["version"])
        assert refused.status_code == 400 and "banned term 'lake'" in refused.json()["problems"][0]


def test_a_copy_edit_is_an_audited_override_drawn_in_the_previews(client, item: Item, queue: ReviewQueue) -> None:
    c, csrf = client
    before = c.get(f"/i/{item.id}").text
    done = post(c, csrf, item, "copy", field="headline", value="Wake up by the lake", version=item.version)
    assert done.status_code == 200, done.text
    assert done.json()["overrides"]["headline"] | {"at": ""} == \
        {"before": "Sleep outside", "after": "Wake up by the lake", "by": "dana", "at": ""}
    after = c.get(f"/i/{item.id}").text
    assert 'value="Wake up by the lake"' in after and "edited by dana · sheet: “Sleep outside”" in after
    assert "headline: “Sleep outside” → “Wake up by the lake”" in after  # the history
    import re
    old, new = (set(re.findall(r"/preview/([0-9a-f]{64})\.png", page)) for page in (before, after))
    assert len(new) == len(PLACEMENTS) and not old & new  # every placement drawn again with the new headline
    alt = post(c, csrf, item, "copy", field="alt_text", value="A tent by a lake at dawn", version=done.json()["version"])
    assert alt.status_code == 200
    assert set(re.findall(r"/preview/([0-9a-f]{64})\.png", c.get(f"/i/{item.id}").text)) == new  # no pixel changed
