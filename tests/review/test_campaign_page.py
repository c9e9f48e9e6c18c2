"""The live campaign page: report.html rebuilt after each decision and publish in the review app,
the same page served by the app (images through the app), and publish's progress and result."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path

from PIL import Image
from tests.review.review_factories import CAMPAIGN, results_for
from tests.review.test_app import ORIGIN, app_for, decide, items, login, png  # noqa: F401 (items: a fixture)

from review.campaign_page import rebuild_report
from review.queue import Item, ReviewQueue
from store import LocalStore
from store.documents import ReportPlan, write_document
from store.keys import export_key, manifest_key, report_key, report_plan_key

JSON = {"accept": "application/json"}


def report(out: Path) -> str:
    return (out / report_key(CAMPAIGN)).read_text(encoding="utf-8")


def headers(csrf: str) -> dict[str, str]:
    return {**ORIGIN, "x-csrf-token": csrf, **JSON}


def fake_export(out: Path, item: Item) -> list[dict]:
    """What an export leaves: one file written and one failure, in the manifest."""
    store = LocalStore(out)
    path = export_key(CAMPAIGN, "meta.feed.square", item.asset_id, 1, "png")
    data = png((200, 40, 40), (64, 64))
    store.put(path, data)
    rows = [{"asset_id": item.asset_id, "variant": item.variant, "placement": "meta.feed.square", "format": "png",
             "width": 64, "height": 64, "status": "exported", "path": path, "approved_by": "dana",
             "sha256": hashlib.sha256(data).hexdigest()},
            {"asset_id": item.asset_id, "variant": item.variant, "placement": "meta.stories", "format": "webp",
             "status": "failed", "path": export_key(CAMPAIGN, "meta.stories", item.asset_id, 1, "webp"),
             "error": "over the byte cap"}]
    store.put(manifest_key(CAMPAIGN), json.dumps(rows).encode(), overwrite=True)
    return rows


def test_a_decision_rebuilds_the_campaign_page(out: Path, items: list[Item], queue: ReviewQueue) -> None:
    rebuild_report(LocalStore(out), queue, CAMPAIGN)
    assert "Review queue: 2 queued, 0 reroll requested, 1 approved, 0 rejected." in report(out)
    with app_for(out) as client:
        csrf = login(client)
        assert decide(client, csrf, items[0], "approve").status_code == 200
        assert "Review queue: 1 queued, 0 reroll requested, 2 approved, 0 rejected." in report(out)
        assert "approved by dana" in report(out)
        approved = client.post(f"/c/{CAMPAIGN}/approve", json={"items": {items[1].id: items[1].version}},
                               headers=headers(csrf))
        assert approved.status_code == 200
    assert "Review queue: 0 queued, 0 reroll requested, 3 approved, 0 rejected." in report(out)


def test_the_page_shows_a_rerolled_variant_s_new_renders(out: Path, items: list[Item], queue: ReviewQueue) -> None:
    store = LocalStore(out)
    write_document(store, report_plan_key(CAMPAIGN), ReportPlan(
        campaign=CAMPAIGN, jobs=[j.to_dict() for i in items for j in i.jobs.values()],
        problems=["camp.csv:9:style: no style 'nope'"], rows_valid=3, rows_blocked=1, rows_banned=0))
    old = items[0].jobs["1:1"].key
    rebuild_report(store, queue, CAMPAIGN)
    assert old[:12] in report(out) and "no style &#39;nope&#39;" in report(out)
    with app_for(out) as client:
        decide(client, login(client), items[0], "reroll")
    assert old[:12] in report(out) and "reroll requested" in report(out)  # until the new renders arrive
    rerolled = queue.pending_rerolls(CAMPAIGN)
    for job in rerolled:
        store.put(f"renders/{job.key}.png", png((9, 9, 9), (job.width, job.height)))
    queue.enqueue(rerolled, results_for(rerolled))  # what the reroll's run does, then it rebuilds
    rebuild_report(store, queue, CAMPAIGN)
    new = rerolled[0].key
    assert new[:12] in report(out) and old[:12] not in report(out)  # the replaced render is gone


def test_publish_shows_progress_then_the_result_on_the_page(out: Path, items: list[Item],
                                                            queue: ReviewQueue) -> None:
    go = threading.Event()

    def publish(campaign: str, reviewer: str, note: str) -> list[str]:
        assert go.wait(30)
        fake_export(out, items[2])
        return []

    with app_for(out, publish=publish) as client:
        csrf = login(client, "lee")
        assert client.get(f"/c/{CAMPAIGN}/publish/status", headers=JSON).json() is None
        started = client.post(f"/c/{CAMPAIGN}/publish", json={"note": "go"}, headers=headers(csrf))
        assert started.status_code == 202 and started.json()["status"] == f"/c/{CAMPAIGN}/publish/status"
        running = client.get(f"/c/{CAMPAIGN}/publish/status", headers=JSON).json()
        assert running["state"] == "running" and running["by"] == "lee" and running["approved"] == 1
        assert 'data-publishing="1"' in client.get(f"/c/{CAMPAIGN}/report").text
        again = client.post(f"/c/{CAMPAIGN}/publish", headers=headers(csrf))
        assert again.status_code == 409 and "by lee" in again.json()["error"]
        go.set()
        assert client.app.state.publishing.wait(CAMPAIGN, 30)
        done = client.get(f"/c/{CAMPAIGN}/publish/status", headers=JSON).json()
        page = client.get(f"/c/{CAMPAIGN}/report")
        sha = json.loads((out / manifest_key(CAMPAIGN)).read_text())[0]["sha256"]
        thumb = client.get(f"/c/{CAMPAIGN}/thumb/{sha}.jpg")
        shipped = client.get(f"/c/{CAMPAIGN}/exports/meta.feed.square/bottle-03.png")
        failed = client.get(f"/c/{CAMPAIGN}/exports/meta.stories/bottle-03.webp")
        manifest = client.get(f"/c/{CAMPAIGN}/manifest.json")
    assert done["state"] == "done" and done["written"] == 1 and done["finished"]
    assert done["failures"] == [f"{CAMPAIGN}/exports/meta.stories/bottle-03.webp: over the byte cap"]
    assert done["where"] == str(out / CAMPAIGN / "exports")
    for html in (report(out), page.text):  # the file and the app's page
        assert "1 export files written or current, 1 failures" in html and "over the byte cap" in html
        assert "What ships (1 placements)" in html and str(out / CAMPAIGN / "exports") in html
        assert html.index("What ships") < html.index("Not shipped") < html.index("Campaign metrics")
    assert "data:image" not in page.text and f'src="/c/{CAMPAIGN}/thumb/' in page.text  # the CSP allows no data:
    assert 'href="exports/meta.feed.square/bottle-03.png"' in page.text  # relative: served by the app too
    assert Image.open(io.BytesIO(thumb.content)).format == "JPEG" and shipped.content[:4] == b"\x89PNG"
    assert failed.status_code == 404 and manifest.json()[0]["asset_id"] == "bottle-03"


def test_a_failed_publish_says_why(out: Path, items: list[Item]) -> None:
    def publish(campaign: str, reviewer: str, note: str) -> list[str]:
        raise RuntimeError("the store is read-only")

    with app_for(out, publish=publish) as client:
        client.post(f"/c/{CAMPAIGN}/publish", headers=headers(login(client)))
        assert client.app.state.publishing.wait(CAMPAIGN, 30)
        status = client.get(f"/c/{CAMPAIGN}/publish/status", headers=JSON).json()
    assert status["state"] == "failed" and status["error"] == "RuntimeError: the store is read-only"
    assert "RuntimeError: the store is read-only" in report(out)


def test_a_publish_that_resumed_a_waiting_run_says_so(out: Path, items: list[Item]) -> None:
    with app_for(out, publish=lambda *args: ["1234-run"]) as client:
        client.post(f"/c/{CAMPAIGN}/publish", headers=headers(login(client)))
        assert client.app.state.publishing.wait(CAMPAIGN, 30)
    assert "It resumed the run waiting for this review (1234-run)" in report(out)


def test_the_page_and_its_files_need_login(out: Path, items: list[Item]) -> None:
    with app_for(out) as client:
        for path in (f"/c/{CAMPAIGN}/report", f"/c/{CAMPAIGN}/manifest.json", f"/c/{CAMPAIGN}/thumb/{'a' * 64}.jpg",
                     f"/c/{CAMPAIGN}/exports/meta.feed.square/x.png", f"/c/{CAMPAIGN}/publish/status"):
            assert client.get(path, headers=JSON).status_code == 401, path
        login(client)
        assert client.get(f"/c/{CAMPAIGN}/thumb/nothex.jpg").status_code == 404
        assert client.get(f"/c/{CAMPAIGN}/manifest.json").status_code == 404  # nothing exported yet
        assert client.get("/c/other/report").status_code == 404
        page = client.get(f"/c/{CAMPAIGN}/report")
    assert page.status_code == 200 and "Nothing exported yet" in page.text and "/assets/report.css" in page.text
