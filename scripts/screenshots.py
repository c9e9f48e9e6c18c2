"""Regenerate the screenshots in docs/screenshots/ from the running review app (`make screenshots`).

1. builds a demo campaign in a temporary folder: the example sheet (campaigns/spring-launch.csv)
   through the real `brandbatch run` on the tiny offline models (plan, render, QA, review
   queue, export, campaign page);
2. starts the review app on it (with the real "publish approved": resume a waiting run, else
   the export flow);
3. drives headless Chromium (Selenium; Debian's chromium + chromium-driver, `make browser`)
   as a designer: logs in, captures the queue (review-grid.png), an item page
   (review-detail.png), approves that item, publishes from the campaign page, waits for the
   result and captures the campaign page (campaign-page.png).

:func:`capture` is the browser part alone; tests/review/test_screenshots.py runs it against a
small queue so it cannot rot unnoticed. Run: `python scripts/screenshots.py [--dest DIR]`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOCS = REPO / "docs" / "screenshots"
SHEET = REPO / "campaigns" / "spring-launch.csv"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REVIEWER, TOKEN = "dana", "dana-demo-token-0123456789"
SHOTS = ("review-grid.png", "review-detail.png", "campaign-page.png")
WIDTH = 1280


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def build_demo(workdir: Path) -> Path:
    """The example campaign run for real (tiny offline models) into ``workdir/out``; returns it."""
    out = workdir / "out"
    exe = Path(sys.executable).with_name("brandbatch")
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([str(exe), "run", str(SHEET), "--out", str(out), "--styles", str(REPO / "styles")],
                          cwd=workdir, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": path})
    if not (out / "review.sqlite3").is_file():
        raise RuntimeError(f"the demo run left no review queue (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return out


@contextmanager
def serving(out: Path, publish: Callable | None) -> Iterator[str]:
    """The review app on ``out`` on a free local port (its base URL), in a thread."""
    import uvicorn

    from review.app import create_app

    app = create_app(str(out), reviewers={REVIEWER: TOKEN}, publish=publish, allowed_hosts=["127.0.0.1"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the review app to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={WIDTH},900", f"--user-data-dir={profile}", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _images_loaded(driver, selector: str) -> bool:
    from selenium.webdriver.common.by import By

    images = driver.find_elements(By.CSS_SELECTOR, selector)
    return bool(images) and all(img.get_attribute("complete") == "true" and img.get_attribute("naturalWidth") != "0"
                                for img in images)


def _shoot(driver, path: Path, max_height: int = 2400) -> None:
    """The whole page (up to ``max_height`` px tall) as a PNG."""
    height = min(max(int(driver.execute_script("return document.documentElement.scrollHeight")), 600), max_height)
    driver.set_window_size(WIDTH, height)
    chrome = height - int(driver.execute_script("return window.innerHeight"))  # the window's own bars, if any
    driver.set_window_size(WIDTH, height + chrome)
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 900)


def capture(base: str, campaign: str, dest: Path, profile: Path, *, timeout: float = 600) -> list[Path]:
    """Log in to the review app at ``base`` and capture :data:`SHOTS` of ``campaign`` into
    ``dest``: the queue, its first waiting item's page, then (after approving that item and
    publishing from the campaign page, waiting up to ``timeout`` s for the result) the
    campaign page. Returns the files written."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    dest.mkdir(parents=True, exist_ok=True)
    with chromium(profile) as driver:
        driver.get(f"{base}/c/{campaign}")
        driver.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
        wait_for(lambda: driver.current_url.endswith(f"/c/{campaign}"), 30, "the queue after login")
        wait_for(lambda: _images_loaded(driver, ".grid img"), 30, "the queue's pictures")
        _shoot(driver, dest / "review-grid.png")

        driver.find_element(By.CSS_SELECTOR, ".grid .item a.thumb").click()
        wait_for(lambda: "/i/" in driver.current_url, 30, "an item page")
        wait_for(lambda: _images_loaded(driver, ".detail img"), 30, "the item's pictures")
        _shoot(driver, dest / "review-detail.png")

        approve = driver.find_element(By.CSS_SELECTOR, '[data-decision="approve"]')
        if approve.is_enabled():
            item = driver.current_url
            approve.click()  # the page moves on to the next item waiting, or back to the queue
            wait_for(lambda: driver.current_url != item, 30, "the approval")
        driver.get(f"{base}/c/{campaign}/report")
        publish = driver.find_elements(By.ID, "publish")
        if publish:
            publish[0].click()  # the page polls the publish, then reloads with its result
            wait_for(lambda: driver.execute_script(
                "return document.readyState === 'complete' && !document.body.dataset.publishing && "
                "!!document.querySelector('.published.publish-done, .published.publish-failed')"), timeout,
                "the publish's result")
        wait_for(lambda: _images_loaded(driver, ".report img") or not driver.find_elements(By.CSS_SELECTOR,
                                                                                           ".report img"),
                 30, "the campaign page's pictures")
        _shoot(driver, dest / "campaign-page.png")
    return [dest / name for name in SHOTS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DOCS, help=f"where the PNGs go (default {DOCS})")
    args = parser.parse_args(argv)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        print("needs Debian's chromium and chromium-driver: `make browser`", file=sys.stderr)
        return 1
    from flows.review_wait import publisher

    with tempfile.TemporaryDirectory(prefix="brandbatch-screenshots-") as tmp:
        work = Path(tmp)
        print("building the demo campaign (the example sheet on the tiny models)...", flush=True)
        out = build_demo(work)
        campaign = SHEET.stem
        with serving(out, publisher(str(out))) as base:
            written = capture(base, campaign, args.dest, work / "chromium")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
