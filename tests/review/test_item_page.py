"""The item page during and after a reroll (its status endpoint, before / after), and zoom."""

from __future__ import annotations

from pathlib import Path

from tests.review.review_factories import CAMPAIGN, results_for
from tests.review.test_app import app_for, decide, items, login, png  # noqa: F401 (items: a fixture)

from review.queue import Item, ReviewQueue
from store import LocalStore


def test_the_item_page_polls_a_reroll_then_shows_before_and_after(out: Path, items: list[Item],
                                                                   queue: ReviewQueue) -> None:
    item = items[0]
    with app_for(out) as client:
        login(client)
        assert "before-after" not in client.get(f"/i/{item.id}").text  # never rerolled: nothing to compare
        decide(client, login(client), item, "reroll")
        waiting = client.get(f"/i/{item.id}/status", headers={"accept": "application/json"}).json()
        page = client.get(f"/i/{item.id}").text
        assert waiting["state"] == "reroll_requested" and waiting["job_keys"] == item.job_keys
        assert 'id="rerolling"' in page and "updates itself" in page

        rerolled = queue.pending_rerolls(CAMPAIGN)  # the reroll's run renders, checks and queues them
        store = LocalStore(out)
        for job in rerolled:
            store.put(f"renders/{job.key}.png", png((9, 9, 9), (job.width, job.height)))
        queue.enqueue(rerolled, results_for(rerolled))

        arrived = client.get(f"/i/{item.id}/status", headers={"accept": "application/json"}).json()
        page = client.get(f"/i/{item.id}").text
        other = client.get(f"/i/{items[1].id}").text
    assert arrived["state"] == "queued" and arrived["reroll"] == 1 and arrived["version"] > waiting["version"]
    assert arrived["job_keys"] == {j.aspect: j.key for j in rerolled}
    assert 'id="rerolling"' not in page and "Before / after reroll 1" in page
    for job in rerolled:  # each aspect: the replaced render beside its new one
        old = item.jobs[job.aspect].key
        assert page.index(f"/render/{old}.png") < page.index(f"/render/{job.key}.png", page.index("before-after"))
    assert "before-after" not in other


def test_status_needs_login_and_a_known_item(out: Path, items: list[Item]) -> None:
    with app_for(out) as client:
        assert client.get(f"/i/{items[0].id}/status", headers={"accept": "application/json"}).status_code == 401
        login(client)
        assert client.get(f"/i/{'0' * 32}/status").status_code == 404
        assert client.get("/i/nothex/status").status_code == 404


def test_zoom_is_on_every_page_and_in_the_shortcuts(out: Path, items: list[Item]) -> None:
    with app_for(out) as client:
        login(client)
        page = client.get(f"/i/{items[0].id}").text
        script = client.get("/assets/review.js").text
    assert 'id="zoom-dialog"' in page and "zoom to full size (<kbd>Esc</kbd> closes)" in page
    assert ".renders img, img[data-zoom]" in script and "zoom.showModal()" in script
