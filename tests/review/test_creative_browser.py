"""A designer reviews the creative as it ships, in headless Chromium, and the published files are
what the page showed.

Log in, open an item: one preview per placement, and the pixels the browser shows (read back
through a canvas) equal a PNG export of the item decoded and scaled to preview size with the
same Lanczos resize (``exports.preview.at_preview_scale``). PNG is lossless, so the comparison
is exact: no codec tolerance is needed. Toggle the safe zones (the guide sits at the
placement's insets), reject one placement with a reason, edit the headline, approve, publish
(the real ``export_campaign`` flow, PNG and WebP). Then the manifest has the rejected placement
as ``status: rejected`` with no file, the override, and the exported PNGs equal, pixel for
pixel, an export made with the new headline in the sheet; the live campaign page shows the two
placements that ship and the rejected one as not shipped, with who rejected it and why.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.review.review_factories import CAMPAIGN, make_jobs, results_for
from tests.review.test_browser import CHROMEDRIVER, CHROMIUM, TOKEN, browser, free_port, wait_for  # noqa: F401

from exports.assemble import export_items, load_assets, save_assets
from exports.placements import load_placements
from exports.preview import at_preview_scale
from exports.stage import export_assets
from flows.review_wait import publisher
from render.stage import render_missing
from review.app import create_app
from review.queue import ApprovedVariant, ReviewQueue
from store import LocalStore
from store.documents import AssetRecord, AssetSnapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"),
]

PLACEMENTS = ["meta.feed.square", "meta.stories", "google.display.upload.300x250"]
SHEET = AssetRecord(row=2, placements=PLACEMENTS, alt_text="A green tent by a lake", headline="Sleep outside",
                    cta="Shop now")
NEW_HEADLINE = "Wake up by the lake"


@pytest.fixture
def server(out: Path, queue: ReviewQueue, prefect_home: Path):
    import uvicorn

    store = LocalStore(out)
    jobs = make_jobs("tent-02")
    assert not render_missing(jobs, store).failed  # the tiny offline model
    save_assets(store, CAMPAIGN, AssetSnapshot(assets={"tent-02": SHEET}))
    queue.enqueue(jobs, results_for(jobs))
    app = create_app(str(out), reviewers={"dana": TOKEN}, store=store, allowed_hosts=["127.0.0.1"],
                     publish=publisher(str(out), formats=("png", "webp")))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, 30, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


def png_export(out: Path, scratch: Path, queue: ReviewQueue, asset: AssetRecord) -> dict[str, np.ndarray]:
    """placement -> pixels of a PNG export of the queue's tent-02 with ``asset`` as its sheet row,
    made in a scratch store (the renders copied), so nothing of the campaign's output changes."""
    shutil.copytree(out / "renders", scratch / "renders", dirs_exist_ok=True)
    store = LocalStore(scratch)
    sheet_only = dataclasses.replace(ApprovedVariant.of(queue.items(CAMPAIGN)[0]), rejected_placements={},
                                     overrides={})  # what the sheet alone says
    (export,) = export_items(CAMPAIGN, [sheet_only], {"tent-02": asset})
    rows = export_assets([export], store, load_placements(), formats=("png",), workers=1)
    return {row["placement"]: decoded(store.get(row["path"])) for row in rows if row["status"] == "exported"}


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def shown_previews(browser) -> dict[str, np.ndarray]:
    """placement -> the pixels of its preview as the browser decoded them (read through a canvas)."""
    urls = browser.execute_script("""
        return Array.from(document.querySelectorAll("figure.placement")).map((figure) => {
          const img = figure.querySelector("img.preview");
          const canvas = document.createElement("canvas");
          canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
          canvas.getContext("2d").drawImage(img, 0, 0);
          return [figure.dataset.placement, canvas.toDataURL("image/png")];
        });""")
    return {pid: decoded(base64.b64decode(url.split(",", 1)[1])) for pid, url in urls}


def test_a_designer_reviews_the_creative_as_it_ships(server: str, browser, queue: ReviewQueue, out: Path,
                                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    (item,) = queue.items(CAMPAIGN)
    browser.set_window_size(1280, 1700)  # the placements and the copy in one screenshot
    browser.get(f"{server}/i/{item.id}")
    browser.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith(f"/i/{item.id}"), 10, "the item page after login")

    def previews_loaded() -> bool:
        images = browser.find_elements(By.CSS_SELECTOR, "figure.placement img.preview")
        return len(images) == len(PLACEMENTS) and all(
            browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images)

    wait_for(previews_loaded, 30, "one preview per placement")
    shown = shown_previews(browser)
    expected = png_export(out, tmp_path / "scratch-sheet", queue, SHEET)
    assert list(shown) == PLACEMENTS
    for pid in PLACEMENTS:  # exactly the export file, decoded and scaled as defined
        assert np.array_equal(shown[pid], np.asarray(at_preview_scale(Image.fromarray(expected[pid])))), pid
    browser.save_screenshot(str(tmp_path / "creative-detail.png"))

    # Safe zones: off until toggled, then drawn at the placement's insets (meta.stories: 269 px of 1920 on top).
    story = browser.find_element(By.CSS_SELECTOR, 'figure[data-placement="meta.stories"]')
    zone = story.find_element(By.CSS_SELECTOR, ".safe-zone")
    assert not zone.is_displayed()
    browser.find_element(By.ID, "safe-toggle").click()
    wait_for(zone.is_displayed, 5, "the safe-zone guide")
    image = story.find_element(By.CSS_SELECTOR, "img.preview")
    top = zone.location["y"] - image.location["y"]
    assert abs(top - 269 / 1920 * image.size["height"]) <= 1.0
    browser.save_screenshot(str(tmp_path / "creative-safe-zones.png"))

    # Reject one placement with a reason; the rest ship.
    story.find_element(By.CSS_SELECTOR, "[data-reject-placement]").click()
    wait_for(lambda: browser.find_element(By.ID, "placement-dialog").is_displayed(), 10, "the placement dialog")
    Select(browser.find_element(By.ID, "placement-reason")).select_by_value("text_too_small")
    browser.find_element(By.ID, "placement-note").send_keys("CTA under the story UI")
    browser.find_element(By.ID, "placement-submit").click()
    wait_for(lambda: "It does not ship." in browser.find_element(
        By.CSS_SELECTOR, 'figure[data-placement="meta.stories"]').text, 20, "the rejected placement")

    # Edit the headline: checked, stored as an override, every preview drawn again with it.
    field = browser.find_element(By.ID, "copy-headline")
    field.clear()
    field.send_keys("Cheap tents")  # a banned term of acme@2: refused, with the field, value and what is allowed
    browser.find_element(By.CSS_SELECTOR, '[data-copy-field="headline"]').click()
    wait_for(lambda: "banned term 'cheap'" in browser.find_element(By.ID, "copy-errors").text, 10, "the refusal")
    assert "allowed: text without the banned terms of style acme@2" in browser.find_element(By.ID, "copy-errors").text
    field = browser.find_element(By.ID, "copy-headline")
    field.clear()
    field.send_keys(NEW_HEADLINE)
    browser.find_element(By.CSS_SELECTOR, '[data-copy-field="headline"]').click()
    wait_for(lambda: "edited by dana" in browser.execute_script(  # read by script: the page reloads meanwhile
        "const form = document.getElementById('copy-form'); return form ? form.textContent : ''"), 20, "the override")
    wait_for(previews_loaded, 30, "the new previews")
    edited_sheet = SHEET.model_copy(update={"headline": NEW_HEADLINE})
    edited = png_export(out, tmp_path / "scratch-edited", queue, edited_sheet)
    shown = shown_previews(browser)
    for pid in PLACEMENTS:
        assert np.array_equal(shown[pid], np.asarray(at_preview_scale(Image.fromarray(edited[pid])))), pid
    browser.save_screenshot(str(tmp_path / "creative-edited.png"))

    # Approve the creative, then publish.
    browser.find_element(By.CSS_SELECTOR, '[data-decision="approve"]').click()
    wait_for(lambda: browser.current_url.endswith(f"/c/{CAMPAIGN}"), 20, "the queue after the approval")
    browser.get(f"{server}/c/{CAMPAIGN}?state=all")
    hero = browser.find_element(By.CSS_SELECTOR, f'.item[data-id="{item.id}"] .thumb img')
    assert hero.get_attribute("src").endswith(f"/i/{item.id}/hero.png")  # the grid shows the hero placement
    wait_for(lambda: browser.execute_script("return arguments[0].naturalWidth", hero) == 480, 20, "the hero preview")
    browser.save_screenshot(str(tmp_path / "creative-grid.png"))
    browser.find_element(By.ID, "publish").click()
    manifest = out / CAMPAIGN / "manifest.json"
    wait_for(manifest.exists, 240, "the export flow's manifest")
    rows = json.loads(manifest.read_text(encoding="utf-8"))

    (rejected,) = [r for r in rows if r["placement"] == "meta.stories"]
    assert (rejected["status"], rejected["error"]) == ("rejected", "rejected by dana: text_too_small "
                                                                   "(CTA under the story UI)")
    assert not (out / CAMPAIGN / "exports" / "meta.stories").exists()
    shipped = [r for r in rows if r["status"] == "exported"]
    assert {(r["placement"], r["format"]) for r in shipped} == {
        (p, f) for p in PLACEMENTS if p != "meta.stories" for f in ("png", "webp")}
    for row in shipped:
        assert row["headline"] == NEW_HEADLINE and row["approved_by"] == "dana"
        assert row["overrides"]["headline"] == {"before": "Sleep outside", "after": NEW_HEADLINE, "by": "dana"}
    for row in (r for r in shipped if r["format"] == "png"):  # the edited headline is in the shipped pixels
        assert np.array_equal(decoded((out / row["path"]).read_bytes()), edited[row["placement"]]), row["path"]
    assert load_assets(LocalStore(out), CAMPAIGN)["tent-02"].headline == "Sleep outside"  # the sheet stays
    # Publish took the browser to the campaign page, which follows the publish and reloads with its result.
    wait_for(lambda: browser.execute_script(
        "return location.pathname.endsWith('/report') && document.readyState === 'complete' && "
        "!document.body.dataset.publishing && !!document.querySelector('.published.publish-done')"), 240,
        "the publish's result on the campaign page")
    # The live campaign page (served by the app) shows the new files, and the rejected placement as not shipped.
    def campaign_page() -> str:
        browser.get(f"{server}/c/{CAMPAIGN}/report")
        return browser.find_element(By.TAG_NAME, "main").text

    text = wait_for(lambda: t if "What ships (2 placements)" in (t := campaign_page()) else None, 60,
                    "the campaign page with the published files")
    shipped_tiles = browser.find_elements(By.CSS_SELECTOR, ".sheet.shipped .tile")
    assert sorted(t.text.splitlines()[1] for t in shipped_tiles) == ["google.display.upload.300x250",
                                                                    "meta.feed.square"]
    assert "meta.stories rejected rejected by dana: text_too_small (CTA under the story UI)" in text
    browser.save_screenshot(str(tmp_path / "creative-campaign-page.png"))
    decisions = [(d.decision, d.placement, d.reason) for d in queue.decisions(item.id)]
    assert decisions == [("reject_placement", "meta.stories", "text_too_small"), ("edit_copy", None, None),
                         ("approve", None, None)]
