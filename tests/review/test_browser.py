"""End to end in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
log in, approve with the keyboard, reject with a reason, reroll; the reroll renders for real
with the tiny offline model (through the stage functions a campaign run uses for it: the app
itself only hands the jobs on): the item page updates itself when the new renders arrive and
shows them beside the ones they replace; a click zooms a picture, Esc closes it. (The docs'
screenshots come from scripts/screenshots.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.review.review_factories import CAMPAIGN, make_jobs, results_for

from review.actions import queue_rerolls, styles_qa
from review.app import create_app
from review.queue import ReviewQueue
from store import LocalStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
TOKEN = "dana-token-0123456789"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll `condition` until it is truthy. An element the page replaced while the condition read it
    (StaleElementReferenceException: the page re-renders after a decision) counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def server(out: Path, queue: ReviewQueue) -> Iterator[str]:
    import uvicorn

    from render.stage import render_missing

    store = LocalStore(out)
    for n, asset in enumerate(["tent-02", "trail-pack-01", "bottle-03"]):
        jobs = make_jobs(asset, row=n + 2)
        assert not render_missing(jobs, store).failed
        queue.enqueue(jobs, results_for(jobs, "review"))
    check = styles_qa(store, REPO / "styles")

    def campaign_run(jobs):  # what the campaign flow started for a reroll does with its jobs
        assert not render_missing(jobs, store).failed
        rerolls = ReviewQueue.for_out(out)
        try:
            queue_rerolls(rerolls, jobs, {r.job_key: r for r in check(jobs)}, jobs)
        finally:
            rerolls.close()

    app = create_app(str(out), reviewers={"dana": TOKEN}, store=store, allowed_hosts=["127.0.0.1"],
                     rerender=campaign_run)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, 30, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def test_review_in_a_browser(server: str, browser, queue: ReviewQueue, out: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    items = queue.items(CAMPAIGN)
    tent, trail, bottle = items
    browser.get(f"{server}/c/{CAMPAIGN}")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith(f"/c/{CAMPAIGN}"), 10, "the grid after login")

    def card(item_id: str):
        return browser.find_element(By.CSS_SELECTOR, f'.item[data-id="{item_id}"]')

    def keys(*sequence: str) -> None:
        browser.switch_to.active_element.send_keys(*sequence)

    wait_for(lambda: "focused" in card(tent.id).get_attribute("class"), 10, "the first card to have focus")

    keys("a")  # approve tent-02; focus moves on to trail-pack-01
    wait_for(lambda: card(tent.id).get_attribute("data-state") == "approved", 10, "the approval")
    keys("x")  # reject trail-pack-01 with a reason
    wait_for(lambda: browser.find_element(By.ID, "reject-dialog").is_displayed(), 10, "the reject dialog")
    Select(browser.find_element(By.ID, "reject-reason")).select_by_value("off_brand")
    browser.find_element(By.ID, "reject-note").send_keys("colours are off")
    browser.find_element(By.ID, "reject-submit").click()
    wait_for(lambda: card(trail.id).get_attribute("data-state") == "rejected", 10, "the rejection")

    keys(Keys.ENTER)  # open bottle-03 (focus moved on to it)
    wait_for(lambda: browser.current_url.endswith(f"/i/{bottle.id}"), 10, "the detail view")
    wait_for(lambda: all(img.get_attribute("naturalWidth") not in (None, "0")
                         for img in browser.find_elements(By.CSS_SELECTOR, ".renders img")), 10, "the renders")
    browser.find_element(By.CSS_SELECTOR, ".renders img").click()  # zoom, then Esc closes
    zoom = browser.find_element(By.ID, "zoom-dialog")
    wait_for(lambda: zoom.is_displayed(), 10, "the zoomed picture")
    assert browser.find_element(By.ID, "zoom-image").get_attribute("naturalWidth") not in (None, "0")
    zoom.send_keys(Keys.ESCAPE)
    wait_for(lambda: not zoom.is_displayed(), 10, "Esc to close the zoom")
    keys("r")  # reroll bottle-03: rendered with the tiny model after the response
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".item").get_attribute("data-state") == "reroll_requested",
             10, "the reroll request")
    rerolled = wait_for(lambda: (i := queue.item(bottle.id)).reroll == 1 and i, 120, "the reroll's renders")

    assert [(d.reviewer, d.decision) for d in queue.decisions(tent.id)] == [("dana", "approve")]
    assert [(d.reviewer, d.decision, d.reason, d.note) for d in queue.decisions(trail.id)] == [
        ("dana", "reject", "off_brand", "colours are off")]
    assert [(d.reviewer, d.decision) for d in queue.decisions(bottle.id)] == [("dana", "reroll"), ("brandbatch", "requeue")]
    assert rerolled.state == "queued"  # back to the designers, QA'd by the style's checks
    assert {r.job_key for r in rerolled.qa.values()} == set(rerolled.job_keys.values())
    store = LocalStore(out)
    for aspect, job in rerolled.jobs.items():
        old = bottle.jobs[aspect]
        assert job.reroll == 1 and job.seed != old.seed
        assert store.exists(f"renders/{job.key}.png") and store.exists(f"qa/{job.key}.json")
        assert store.get(f"renders/{job.key}.png") != store.get(f"renders/{old.key}.png")
    assert [(a.asset_id, a.approved_by) for a in queue.approved(CAMPAIGN)] == [("tent-02", "dana")]
    # The page updated itself (no reload by us): the new renders, beside the ones they replaced.
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".before-after"), 30, "the page to show the new renders")
    assert str(rerolled.jobs["1:1"].seed) in browser.find_element(By.CSS_SELECTOR, ".renders").text
    pictures = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, ".before-after img")]
    assert any(bottle.jobs["1:1"].key in src for src in pictures) and any(rerolled.jobs["1:1"].key in src
                                                                          for src in pictures)
