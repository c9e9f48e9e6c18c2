from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image
from tests.review.review_factories import CAMPAIGN, FakeClock, make_jobs, results_for
from starlette.testclient import TestClient

from review.app import create_app
from review.auth import LoginThrottle
from review.queue import Item, ReviewQueue, decisions_table, items_table
from store import LocalStore

REVIEWERS = {"dana": "dana-token-0123456789", "lee": "lee-token-0123456789abc"}
ORIGIN = {"origin": "http://testserver"}


def png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def items(out: Path, queue: ReviewQueue) -> list[Item]:
    store = LocalStore(out)
    queued = []
    for n, (asset, verdict) in enumerate([("tent-02", "review"), ("trail-pack-01", "review"), ("bottle-03", "pass")]):
        jobs = make_jobs(asset, row=n + 2)
        for job in jobs:
            store.put(f"renders/{job.key}.png", png((40 * n, 90, 160), (job.width, job.height)))
        queued.append(queue.enqueue(jobs, results_for(jobs, verdict)))
    return queued


def app_for(out: Path, **kw) -> TestClient:
    return TestClient(create_app(str(out), reviewers=REVIEWERS, allowed_hosts=["testserver"], **kw),
                      follow_redirects=False)


def csrf_of(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return re.search(r'<meta name="csrf" content="([^"]+)">', page.text).group(1)


def login(client: TestClient, name: str = "dana") -> str:
    token = csrf_of(client)
    response = client.post("/login", data={"token": REVIEWERS[name], "csrf": token, "next": "/"}, headers=ORIGIN)
    assert response.status_code == 303, response.text
    return csrf_of(client, "/")


def decide(client: TestClient, csrf: str, item: Item, decision: str, version: int | None = None, **fields):
    return client.post(f"/i/{item.id}/decide", json={"decision": decision, "version": version or item.version, **fields},
                       headers={**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"})


def snapshot(queue: ReviewQueue) -> tuple:
    with queue.engine.connect() as conn:
        return (conn.execute(sa.select(items_table).order_by(items_table.c.id)).all(),
                conn.execute(sa.select(decisions_table).order_by(decisions_table.c.id)).all())


@pytest.fixture
def client(out: Path, items: list[Item]) -> TestClient:
    with app_for(out) as c:
        yield c


def test_healthz_needs_no_login(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_pages_need_login(client: TestClient, items: list[Item]) -> None:
    assert client.get("/").headers["location"] == "/login?next=/"
    assert client.get(f"/render/{items[0].jobs['1:1'].key}.png").status_code == 303
    assert decide(client, "whatever", items[0], "approve").status_code == 401


def test_wrong_token_is_401(client: TestClient) -> None:
    token = csrf_of(client)
    response = client.post("/login", data={"token": "not-a-reviewer-token", "csrf": token}, headers=ORIGIN)
    assert response.status_code == 401 and "Unknown token" in response.text
    assert client.get("/").status_code == 303  # still not logged in


def test_failed_logins_are_throttled_per_address(out: Path, items: list[Item]) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(limit=5, window=60, clock=clock)
    app = create_app(str(out), reviewers=REVIEWERS, allowed_hosts=["testserver"], login_throttle=throttle)
    with TestClient(app, follow_redirects=False, client=("203.0.113.7", 5000)) as attacker, \
            TestClient(app, follow_redirects=False, client=("198.51.100.2", 5000)) as designer:
        csrf = csrf_of(attacker)
        for n in range(5):
            wrong = attacker.post("/login", data={"token": f"guess-{n:016d}", "csrf": csrf}, headers=ORIGIN)
            assert wrong.status_code == 401
        clock.now += 20
        refused = attacker.post("/login", data={"token": REVIEWERS["dana"], "csrf": csrf}, headers=ORIGIN)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "40"  # even the right token
        assert "try again in 40 s" in refused.text and attacker.get("/").status_code == 303
        assert login(designer) and designer.get("/").status_code == 200  # another address logs in
        clock.now += 40
        assert attacker.post("/login", data={"token": REVIEWERS["dana"], "csrf": csrf},
                             headers=ORIGIN).status_code == 303


def test_login_cookie_is_httponly_and_strict(client: TestClient) -> None:
    token = csrf_of(client)
    response = client.post("/login", data={"token": REVIEWERS["dana"], "csrf": token}, headers=ORIGIN)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert REVIEWERS["dana"] not in response.headers["set-cookie"]


@pytest.mark.parametrize(("headers", "with_csrf"), [
    (ORIGIN, False),  # no CSRF token
    ({"origin": "https://evil.example"}, True),  # foreign Origin
    ({"referer": "http://evil.example/page"}, True),  # foreign Referer, no Origin
    ({}, True),  # neither Origin nor Referer
    ({"origin": "null"}, True),
])
def test_post_without_csrf_or_from_elsewhere_is_403(client: TestClient, items: list[Item], queue: ReviewQueue,
                                                     headers: dict, with_csrf: bool) -> None:
    csrf = login(client)
    before = snapshot(queue)
    fields = {"decision": "approve", "version": 1, **({"csrf": csrf} if with_csrf else {})}
    assert client.post(f"/i/{items[0].id}/decide", data=fields, headers=headers).status_code == 403
    assert client.post(f"/i/{items[0].id}/decide", json=fields, headers=headers).status_code == 403
    assert client.post(f"/c/{CAMPAIGN}/approve", data={**fields, "items": f"{items[0].id}:1"},
                       headers=headers).status_code == 403
    wrong = {**fields, "csrf": "x" * 43}
    assert client.post(f"/i/{items[0].id}/decide", data=wrong, headers=ORIGIN).status_code == 403
    assert snapshot(queue) == before


def test_login_itself_needs_csrf_and_origin(client: TestClient) -> None:
    token = csrf_of(client)
    assert client.post("/login", data={"token": REVIEWERS["dana"]}, headers=ORIGIN).status_code == 403
    assert client.post("/login", data={"token": REVIEWERS["dana"], "csrf": token},
                       headers={"origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize("path", [
    "/i/../../etc/passwd", "/i/..%2F..%2Fetc%2Fpasswd", "/i/" + "A" * 32, "/i/" + "g" * 32, "/i/%2e%2e",
    "/render/..%2F..%2Freview.sqlite3.png", "/render/" + "0" * 63 + "z.png", "/render/" + "0" * 64 + ".png",
    "/c/..%2F..", "/c/no-such-campaign", "/assets/..%2Freview%2Fapp.py", "/assets/base.html",
])
def test_bad_ids_are_404(client: TestClient, path: str) -> None:
    login(client)
    assert client.get(path).status_code == 404, path


def test_bad_ids_in_posts_are_404(client: TestClient, queue: ReviewQueue) -> None:
    csrf = login(client)
    before = snapshot(queue)
    for item_id in ["..%2F..%2Fx", "0" * 31, "Z" * 32]:
        response = client.post(f"/i/{item_id}/decide", json={"decision": "approve", "version": 1},
                               headers={**ORIGIN, "x-csrf-token": csrf})
        assert response.status_code == 404, item_id
    response = client.post(f"/c/{CAMPAIGN}/approve", json={"items": {"../x": 1}}, headers={**ORIGIN, "x-csrf-token": csrf})
    assert response.status_code == 404
    assert snapshot(queue) == before


def test_decisions_record_the_reviewer(client: TestClient, items: list[Item], queue: ReviewQueue) -> None:
    csrf = login(client, "lee")
    response = decide(client, csrf, items[0], "reject", reason="off_brand", note="logo too small")
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert [(d.reviewer, d.decision, d.reason, d.note) for d in queue.decisions(items[0].id)] == [
        ("lee", "reject", "off_brand", "logo too small")]
    bad = decide(client, csrf, items[1], "reject")
    assert bad.status_code == 400 and "needs a reason" in bad.json()["error"]
    form = client.post(f"/i/{items[1].id}/decide", data={"decision": "approve", "version": "1", "csrf": csrf},
                       headers={"referer": f"http://testserver/i/{items[1].id}"})
    assert form.status_code == 303 and form.headers["location"] == f"/i/{items[1].id}"
    assert queue.item(items[1].id).approved_by == "lee"


def test_stale_decision_is_409(client: TestClient, items: list[Item]) -> None:
    csrf = login(client)
    assert decide(client, csrf, items[0], "approve").status_code == 200
    conflict = decide(client, csrf, items[0], "reject", reason="artifact")
    assert conflict.status_code == 409 and "changed meanwhile" in conflict.json()["error"]


def test_concurrent_http_decisions_one_wins(out: Path, items: list[Item], queue: ReviewQueue) -> None:
    with app_for(out) as dana, app_for(out) as lee:
        tokens = {"dana": login(dana, "dana"), "lee": login(lee, "lee")}
        barrier = threading.Barrier(2)
        codes: dict[str, int] = {}

        def run(name: str, client: TestClient) -> None:
            barrier.wait()
            codes[name] = decide(client, tokens[name], items[0], "approve" if name == "dana" else "reroll").status_code

        threads = [threading.Thread(target=run, args=pair) for pair in (("dana", dana), ("lee", lee))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes.values()) == [200, 409]
    winner = next(name for name, code in codes.items() if code == 200)
    assert [d.reviewer for d in queue.decisions(items[0].id)] == [winner]


def test_get_never_changes_state(client: TestClient, items: list[Item], queue: ReviewQueue) -> None:
    login(client)
    before = snapshot(queue)
    paths = ["/", f"/c/{CAMPAIGN}", f"/c/{CAMPAIGN}?state=queued&verdict=review", "/healthz", "/login",
             f"/i/{items[0].id}/decide?decision=approve&version=1", f"/c/{CAMPAIGN}/approve?items={items[0].id}:1",
             f"/c/{CAMPAIGN}/publish"]
    paths += [f"/i/{i.id}" for i in items] + [f"/render/{k}.png" for i in items for k in i.job_keys.values()]
    for path in paths:
        assert client.get(path).status_code in (200, 405), path
    assert snapshot(queue) == before


def test_pages_show_the_queue(client: TestClient, items: list[Item]) -> None:
    login(client)
    home = client.get("/").text
    assert f'href="/c/{CAMPAIGN}"' in home
    grid = client.get(f"/c/{CAMPAIGN}?state=queued").text
    assert "tent-02" in grid and "trail-pack-01" in grid and "bottle-03" not in grid
    assert "Publish approved" not in grid
    detail = client.get(f"/i/{items[0].id}")
    assert detail.headers["content-security-policy"].startswith("default-src 'self'")
    for job in items[0].jobs.values():
        assert str(job.seed) in detail.text and f"/render/{job.key}.png" in detail.text
    assert "a photo of tent-02" in detail.text and "acme@2" in detail.text and "clip_score 0.250" in detail.text
    image = client.get(f"/render/{items[0].jobs['9:16'].key}.png")
    assert image.headers["content-type"] == "image/png" and Image.open(io.BytesIO(image.content)).size == (72, 128)


def test_output_is_escaped(out: Path, queue: ReviewQueue) -> None:
    jobs = make_jobs("xss-01", prompt='<script>alert("x")</script>')
    item = queue.enqueue(jobs, results_for(jobs))
    with app_for(out) as client:
        login(client)
        text = client.get(f"/i/{item.id}").text
    assert '<script>alert("x")</script>' not in text and "&lt;script&gt;" in text


def test_bulk_approve(client: TestClient, items: list[Item], queue: ReviewQueue) -> None:
    csrf = login(client)
    response = client.post(f"/c/{CAMPAIGN}/approve", json={"items": {items[0].id: 1, items[1].id: 1}},
                           headers={**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"})
    assert response.status_code == 200 and len(response.json()["approved"]) == 2
    assert {a.asset_id: a.approved_by for a in queue.approved(CAMPAIGN)} == {
        "tent-02": "dana", "trail-pack-01": "dana", "bottle-03": "qa-auto"}
    again = client.post(f"/c/{CAMPAIGN}/approve", json={"items": {items[0].id: 1}},
                        headers={**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"})
    assert again.status_code == 409 and again.json()["conflicts"][0]["id"] == items[0].id


def test_publish_calls_the_injected_export(out: Path, items: list[Item]) -> None:
    published: list[tuple[str, str, str]] = []
    with app_for(out, publish=lambda *args: published.append(args)) as client:
        csrf = login(client, "lee")
        assert "Publish approved" in client.get(f"/c/{CAMPAIGN}").text
        headers = {**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"}
        response = client.post(f"/c/{CAMPAIGN}/publish", headers=headers)
        assert client.app.state.publishing.wait(CAMPAIGN, 30)
        noted = client.post(f"/c/{CAMPAIGN}/publish", json={"note": "tent shots are final"}, headers=headers)
        assert client.app.state.publishing.wait(CAMPAIGN, 30)
        too_long = client.post(f"/c/{CAMPAIGN}/publish", json={"note": "x" * 2001}, headers=headers)
    assert response.status_code == 202 and response.json()["approved"] == 1 and noted.status_code == 202
    assert too_long.status_code == 400 and "at most 2000 characters" in too_long.json()["error"]
    assert published == [(CAMPAIGN, "lee", ""), (CAMPAIGN, "lee", "tent shots are final")]


def test_publish_is_off_without_an_export(client: TestClient) -> None:
    csrf = login(client)
    assert client.post(f"/c/{CAMPAIGN}/publish", headers={**ORIGIN, "x-csrf-token": csrf}).status_code == 404


def test_reroll_hands_new_jobs_to_rerender(out: Path, items: list[Item], queue: ReviewQueue) -> None:
    rerendered = []
    with app_for(out, rerender=rerendered.append) as client:
        csrf = login(client)
        assert decide(client, csrf, items[0], "reroll").json()["state"] == "reroll_requested"
    (jobs,) = rerendered
    assert {j.aspect: j.reroll for j in jobs} == {"1:1": 1, "9:16": 1}
    assert all(j.seed != items[0].jobs[j.aspect].seed for j in jobs)


def test_restart_loses_nothing(out: Path, items: list[Item], queue: ReviewQueue) -> None:
    with app_for(out) as client:
        csrf = login(client)
        decide(client, csrf, items[0], "reject", reason="artifact", note="smudge")
        cookies = dict(client.cookies)
    with app_for(out) as restarted:
        restarted.cookies.update(cookies)  # the session survives: its key lives in the database
        page = restarted.get(f"/i/{items[0].id}")
        assert page.status_code == 200 and "smudge" in page.text and "rejected" in page.text


def test_revoked_token_ends_the_session(out: Path, items: list[Item]) -> None:
    with app_for(out) as client:
        login(client)
        cookies = dict(client.cookies)
    with TestClient(create_app(str(out), reviewers={"lee": REVIEWERS["lee"]}, allowed_hosts=["testserver"]),
                    follow_redirects=False) as other:
        other.cookies.update(cookies)
        assert other.get("/").status_code == 303


def test_foreign_host_header_is_refused(client: TestClient) -> None:
    assert client.get("/healthz", headers={"host": "rebound.evil.example"}).status_code == 400


def test_the_grid_opens_on_the_queue_and_all_is_one_click(client: TestClient, items: list[Item]) -> None:
    login(client)
    queue_page = client.get(f"/c/{CAMPAIGN}").text  # bottle-03 passed QA: approved by qa-auto, not waiting
    assert "tent-02" in queue_page and "trail-pack-01" in queue_page and "bottle-03" not in queue_page
    assert re.search(r'<a href="\?state=queued" class="on">queued \(<span class="count" data-state="queued">2</span>\)',
                     queue_page)
    everything = client.get(f"/c/{CAMPAIGN}?state=all").text
    assert "bottle-03" in everything and re.search(r'href="\?state=all" class="on">all</a>', everything)
    assert 'href="?state=all&amp;verdict=pass"' in everything  # the QA filter keeps "all"
    assert "bottle-03" in client.get(f"/c/{CAMPAIGN}?state=approved").text
    assert "bottle-03" not in client.get(f"/c/{CAMPAIGN}?state=bogus").text  # unknown: the queue


def test_an_empty_queue_says_how_items_arrive(out: Path, enqueue) -> None:
    enqueue("tent-02", verdict="pass")
    with app_for(out) as client:
        login(client)
        text = client.get(f"/c/{CAMPAIGN}").text
    assert "Nothing waits for review" in text and "qa.review_sample_rate" in text and 'href="?state=all"' in text


def test_approve_is_off_with_the_reason_on_a_qa_failure(out: Path, enqueue) -> None:
    failed, fine = enqueue("tent-02", verdict="fail"), enqueue("trail-pack-01")
    with app_for(out) as client:
        login(client)
        text = client.get(f"/i/{failed.id}").text
        other = client.get(f"/i/{fine.id}").text
    assert re.search(r'<button type="button" data-decision="approve" disabled aria-describedby="why-no-approve">', text)
    assert 'id="why-no-approve">Approve is off: QA failed' in text
    assert "why-no-approve" not in other and re.search(r'data-decision="approve">', other)


def test_conflicts_say_who_decided(client: TestClient, items: list[Item]) -> None:
    csrf = login(client, "lee")
    assert decide(client, csrf, items[0], "reject", reason="off_brand").status_code == 200
    dana = login(client, "dana")
    conflict = decide(client, dana, items[0], "approve")  # still at version 1 on dana's screen
    assert conflict.status_code == 409
    assert re.search(r"lee rejected it at \d\d:\d\d:\d\d UTC, now rejected", conflict.json()["error"])


def test_history_has_headers_and_only_columns_with_values(client: TestClient, items: list[Item]) -> None:
    csrf = login(client)
    assert decide(client, csrf, items[0], "approve").status_code == 200
    text = client.get(f"/i/{items[0].id}").text
    history = text[text.index('<table class="history">'):text.index("</table>")]
    assert re.findall(r'<th scope="col">([^<]+)</th>', history) == ["When (UTC)", "Reviewer", "Decision", "Approval"]
    assert "<td></td>" not in history  # no reason, no note: no empty columns
    rejected = decide(client, csrf, items[1], "reject", reason="off_brand", note="too dark")
    assert rejected.status_code == 200
    text = client.get(f"/i/{items[1].id}").text
    history = text[text.index('<table class="history">'):text.index("</table>")]
    assert re.findall(r'<th scope="col">([^<]+)</th>', history) == ["When (UTC)", "Reviewer", "Decision", "Reason", "Note"]
    assert "<td>off brand</td><" in history.replace("\n      ", "") and "too dark" in history


def test_detail_advances_to_the_next_waiting_item(client: TestClient, items: list[Item]) -> None:
    login(client)
    assert f'data-next-queued="{items[1].id}"' in client.get(f"/i/{items[0].id}").text
    assert f'data-next-queued="{items[0].id}"' in client.get(f"/i/{items[1].id}").text  # wraps, skips bottle-03


def test_favicon_and_shortcuts_are_on_every_page(client: TestClient) -> None:
    icon = client.get("/assets/favicon.svg")  # public: the login page shows it too
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml") and b"<svg" in icon.content
    assert '<link rel="icon" href="/assets/favicon.svg"' in client.get("/login").text
    login(client)
    page = client.get("/").text
    assert '<dialog id="keys-dialog"' in page and "<kbd>?</kbd>" in page


def test_long_queues_page_and_search(out: Path, enqueue) -> None:
    for n in range(63):
        enqueue(f"pack-{n:03d}")
    enqueue("Tent_%-01")
    with app_for(out) as client:
        login(client)
        first = client.get(f"/c/{CAMPAIGN}").text
        assert first.count('class="item"') == 60 and "64 items · page 1 of 2" in first
        assert 'href="?state=queued&amp;page=2" rel="next"' in first
        second = client.get(f"/c/{CAMPAIGN}?state=queued&page=2").text
        assert second.count('class="item"') == 4 and 'rel="prev"' in second and 'rel="next"' not in second
        assert client.get(f"/c/{CAMPAIGN}?page=99").text.count('class="item"') == 4  # past the end: the last page
        assert client.get(f"/c/{CAMPAIGN}?page=x").text.count('class="item"') == 60
        found = client.get(f"/c/{CAMPAIGN}", params={"q": "tent_%"}).text  # any case; % and _ are literal
        assert found.count('class="item"') == 1 and "Tent_%-01" in found and "1 item" in found
        assert client.get(f"/c/{CAMPAIGN}", params={"q": "pack-00"}).text.count('class="item"') == 10
        none = client.get(f"/c/{CAMPAIGN}", params={"q": "_%"}).text
        assert none.count('class="item"') == 1
        assert "No items match." in client.get(f"/c/{CAMPAIGN}", params={"q": "zzz"}).text


def test_palette_findings_show_dominant_and_brand_swatches(out: Path, queue: ReviewQueue) -> None:
    from qa.verdicts import QAResult

    jobs = make_jobs("tent-02")
    detail = "#839099 33% dE 27.7 to #F5F1E8; #a7523a 8% dE 13.1 to #E4572E; garbled part"
    item = queue.enqueue(jobs, {j.key: QAResult(j.key, "review", ("palette_uncertain",), {"palette_share": 0.1},
                                                {"dominant_colours": detail}) for j in jobs})
    with app_for(out) as client:
        login(client)
        text = client.get(f"/i/{item.id}").text
    table = text[text.index('<table class="swatches"'):]
    table = table[:table.index("</table>")]
    assert re.findall(r'fill="(#[0-9A-F]{6})"', table) == ["#839099", "#F5F1E8", "#A7523A", "#E4572E"]
    assert "<td>33 %</td><td>27.7</td>" in table and "garbled" not in table


def test_the_campaign_page_warns_about_exports_still_above_max_upscale(out: Path, items):
    import json

    client = app_for(out)
    login(client)
    assert "enlarged more than the style allows" not in client.get(f"/c/{CAMPAIGN}").text  # no manifest yet
    rows = [{"path": f"{CAMPAIGN}/exports/meta.stories/tent-02.webp", "status": "exported", "upscale": 8.438,
             "upscale_flagged": True, "max_upscale": 1.25, "upscaler": ""},
            {"path": f"{CAMPAIGN}/exports/meta.feed.square/tent-02.webp", "status": "exported", "upscale": 1.0,
             "upscale_flagged": False, "max_upscale": 1.25, "upscaler": ""}]
    LocalStore(out).put(f"{CAMPAIGN}/manifest.json", json.dumps(rows).encode())
    page = client.get(f"/c/{CAMPAIGN}").text
    assert "1 asset placement is exported enlarged more than the style allows (max_upscale)" in page
    assert "meta.stories/tent-02 (.webp): enlarged 8.438x from its render, above 1.25x (max_upscale)" in page
    assert "meta.feed.square/tent-02 (.webp): enlarged" not in page
