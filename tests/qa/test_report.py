"""report.html and the markdown summary: offline, escaped, deterministic, complete."""

from __future__ import annotations

import re
import shutil

import jinja2
import pytest
from tests.qa.synth import make_job, make_style, noise, scene, solid

from qa import render_report, run_qa, summary_markdown
from qa import report as report_module
from qa.report import upscale_warnings

MANIFEST = [{"asset_id": "good", "variant": 1, "placement": "meta.feed.square", "format": "webp", "width": 1080,
             "height": 1080, "bytes": 12345, "qa_verdict": "pass", "path": "spring/exports/meta.feed.square/good.webp"}]


def run(store, put_render):
    jobs = [put_render(make_job("good"), scene()), put_render(make_job("black"), solid((0, 0, 0))),
            put_render(make_job("noisy", 2), noise()), make_job("<script>alert(1)</script>")]
    return jobs, run_qa(jobs[:3], store, {"acme@2": make_style()})


def test_report_is_self_contained_escaped_and_lists_everything(store, put_render):
    jobs, results = run(store, put_render)
    html = render_report("spring", jobs, results, store, MANIFEST,
                         extra={"problems": ["sheet.csv:4:style: unknown style 'zeta' <b>"]})
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external URLs"
    assert html.count('src="data:image/jpeg;base64,') == 3
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "unknown style &#39;zeta&#39; &lt;b&gt;" in html
    for heading in ("fail (1)", "pass (2)", "not checked (1)"):
        assert heading in html
    assert "blank" in html and "near_black" in html
    assert "spring/exports/meta.feed.square/good.webp" in html and "12345" in html


def test_report_is_byte_identical_on_rerun(store, put_render):
    jobs, results = run(store, put_render)
    first = render_report("spring", jobs, results, store, MANIFEST, extra={"problems": []})
    _, again = run(store, put_render)
    assert render_report("spring", jobs, again, store, list(reversed(MANIFEST))) == first


def test_markdown_summary_counts_verdicts_reasons_and_scores(store, put_render):
    _, results = run(store, put_render)
    md = summary_markdown("spring", results)
    assert "3 renders checked." in md
    assert "| fail | 1 |" in md and "| review | 0 |" in md and "| pass | 2 |" in md
    assert "| blank | 1 |" in md and "| near_black | 1 |" in md
    assert re.search(r"\| luma_mean \| 3 \| 0 \| [0-9.]+ \| [0-9.]+ \|", md)


def test_contact_sheet_of_what_ships_comes_first_then_failures(store, put_render):
    import io

    from PIL import Image

    jobs, results = run(store, put_render)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 250), (228, 87, 46)).save(buffer, format="PNG")
    store.put("spring/exports/google.display.upload.300x250/good.png", buffer.getvalue())
    shipped = {"asset_id": "good", "variant": 1, "placement": "google.display.upload.300x250", "width": 300,
               "height": 250, "approved_by": "dana", "status": "exported", "qa_verdict": "pass"}
    rows = [{**shipped, "format": "png", "path": "spring/exports/google.display.upload.300x250/good.png"},
            {**shipped, "format": "avif", "path": "spring/exports/google.display.upload.300x250/good.avif"},
            {**shipped, "placement": "meta.stories", "format": "webp", "status": "review", "approved_by": "dana",
             "error": "headline would be 9 px high; at least 14 px is legible", "path": "spring/exports/x.webp"}]
    html = render_report("spring", jobs, results, store, rows)
    ships, not_shipped, summary = (html.index("<h2>What ships (1 placements)</h2>"),
                                   html.index("Not shipped (1 files)</h2>"), html.index("<h2>Summary</h2>"))
    assert ships < not_shipped < summary < html.index("<h2>Renders by QA verdict</h2>")
    sheet = html[ships:not_shipped]
    assert sheet.count('src="data:image/jpeg;base64,') == 1  # the PNG, once for both files of the placement
    assert "<strong>good</strong> v1" in sheet and "approved by dana" in sheet and "meta.stories" not in sheet
    assert "headline would be 9 px high" in html[not_shipped:summary]
    empty = render_report("spring", jobs, results, store, [])
    assert "Nothing exported yet" in empty and "None: every export file of this campaign was written." in empty


def test_files_still_above_max_upscale_are_warned_about(store, put_render):
    jobs, results = run(store, put_render)
    flagged = {**MANIFEST[0], "path": "spring/exports/meta.stories/good.webp", "status": "exported",
               "upscale": 2.109, "upscale_flagged": True, "max_upscale": 1.25,
               "upscaler": "brandbatch/tiny-esrgan@320a563b1dad5eb3"}
    within = {**MANIFEST[0], "status": "exported", "upscale": 0.844, "upscale_flagged": False, "max_upscale": 1.25}
    failed = {**flagged, "path": "spring/exports/x/failed.webp", "status": "failed"}
    html = render_report("spring", jobs, results, store, [flagged, within, failed])
    assert "1 asset placement is exported enlarged more than the style allows" in html
    assert ("spring/exports/meta.stories/good (.webp): enlarged 2.109x from its render upscaled by "
            "brandbatch/tiny-esrgan@320a563b1dad5eb3, above 1.25x (max_upscale)") in html
    assert "failed (.webp): enlarged" not in html
    assert "None: every exported file is within" in render_report("spring", jobs, results, store, [within])


def test_upscale_warnings_are_one_line_per_asset_placement_naming_its_formats():
    def row(path, upscale=2.109, **extra):
        return {"path": path, "status": "exported", "upscale": upscale, "upscale_flagged": True,
                "max_upscale": 1.25, "upscaler": "", **extra}

    rows = [row("c/exports/meta.stories/a.webp"), row("c/exports/meta.stories/a.avif"),
            row("c/exports/meta.stories/a.jpg"), row("c/exports/meta.feed.square/a.webp"),
            row("c/exports/meta.stories/b.webp", upscale=3.0), row("c/exports/meta.stories/b.avif", upscale=3.0),
            row("c/exports/meta.stories/c.webp", status="failed"),
            row("c/exports/meta.stories/d.webp", upscale_flagged=False)]
    assert upscale_warnings(rows) == [
        "c/exports/meta.stories/a (.avif .jpg .webp): enlarged 2.109x from its render, above 1.25x (max_upscale)",
        "c/exports/meta.feed.square/a (.webp): enlarged 2.109x from its render, above 1.25x (max_upscale)",
        "c/exports/meta.stories/b (.avif .webp): enlarged 3x from its render, above 1.25x (max_upscale)",
    ]


def test_thumbnails_are_made_once_per_image_content_and_kept_in_the_store(store, put_render):
    """A rebuild decodes only images it has not seen: thumbnails are kept by their image's content
    (a render's job key, an export file's sha256), so a changed file gets a new one."""
    import hashlib
    import io

    from PIL import Image

    from store.keys import render_key

    def png(colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (300, 250), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    jobs, results = run(store, put_render)
    path = "spring/exports/google.display.upload.300x250/good.png"
    orange, blue = png((228, 87, 46)), png((20, 60, 200))
    store.put(path, orange)
    row = {"asset_id": "good", "variant": 1, "placement": "google.display.upload.300x250", "width": 300,
           "height": 250, "status": "exported", "format": "png", "path": path,
           "sha256": hashlib.sha256(orange).hexdigest()}
    first = render_report("spring", jobs, results, store, [row])
    assert len(store.list("thumbnails")) == 4  # three renders and the export file
    for job in jobs[:3]:
        store.delete(render_key(job.key))  # kept: the renders are not read again
    assert render_report("spring", jobs, results, store, [row]) == first
    store.put(path, blue, overwrite=True)
    changed = render_report("spring", jobs, results, store, [{**row, "sha256": hashlib.sha256(blue).hexdigest()}])
    assert changed != first and len(store.list("thumbnails")) == 5


def test_thumbnails_kept_beforehand_are_the_ones_the_report_reads(store, put_render):
    """``keep_thumbnails`` (the stream calls it as rows finish) makes exactly the thumbnails a report
    shows: of the renders, and per placement of its contact-sheet file only (PNG before AVIF); the
    report built afterwards decodes nothing and is the same."""
    import hashlib
    import io

    from PIL import Image

    from qa.report import keep_thumbnails
    from store.keys import render_key

    jobs, results = run(store, put_render)
    rows = []
    for fmt, colour in (("png", (228, 87, 46)), ("avif", (20, 60, 200))):
        buffer = io.BytesIO()
        Image.new("RGB", (300, 250), colour).save(buffer, format=fmt.upper())
        path = f"spring/exports/google.display.upload.300x250/good.{fmt}"
        store.put(path, buffer.getvalue())
        rows.append({"asset_id": "good", "variant": 1, "placement": "google.display.upload.300x250", "width": 300,
                     "height": 250, "status": "exported", "format": fmt, "path": path,
                     "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()})
    keep_thumbnails(store, [job.key for job in jobs[:3]], rows)
    kept = store.list("thumbnails")
    assert len(kept) == 4  # three renders and the PNG (the AVIF does not show)
    for job in jobs[:3]:
        store.delete(render_key(job.key))
    for row in rows:
        store.delete(row["path"])  # the report reads none of these again
    html = render_report("spring", jobs, results, store, rows)
    assert store.list("thumbnails") == kept and html.count('src="data:image/jpeg;base64,') == 4


@pytest.fixture(autouse=True)
def _report_environment_made_again():
    """Tests that move the cache folder leave no environment made with theirs behind."""
    yield
    report_module._environment.cache_clear()


def _fresh_environment(monkeypatch, cache) -> None:
    monkeypatch.setenv("BRANDBATCH_CACHE", str(cache))
    report_module._environment.cache_clear()


def test_compiled_report_templates_are_kept_for_the_next_process(store, put_render, tmp_path, monkeypatch):
    jobs, results = run(store, put_render)
    _fresh_environment(monkeypatch, tmp_path / "cache")
    first = render_report("spring", jobs, results, store, MANIFEST)
    kept = sorted((tmp_path / "cache" / "jinja").iterdir())
    assert len(kept) == 2 and all(p.name.startswith("__jinja2_") for p in kept)  # report.html + its body
    assert (tmp_path / "cache" / "jinja").stat().st_mode & 0o077 == 0  # it holds code: the user's only

    report_module._environment.cache_clear()  # as a new process: nothing compiled in memory

    def no_compiling(*args, **kwargs):
        raise AssertionError("a template was compiled although its compiled code was kept")

    monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
    assert render_report("spring", jobs, results, store, MANIFEST) == first


def test_the_report_is_made_where_compiled_templates_cannot_be_kept(store, put_render, tmp_path, monkeypatch):
    jobs, results = run(store, put_render)
    _fresh_environment(monkeypatch, tmp_path / "cache")
    expected = render_report("spring", jobs, results, store, MANIFEST)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    _fresh_environment(monkeypatch, blocked)  # the cache folder cannot be made
    assert render_report("spring", jobs, results, store, MANIFEST) == expected
    _fresh_environment(monkeypatch, tmp_path / "gone")
    report_module._environment()  # made, then its folder vanishes: the compiled code cannot be written
    shutil.rmtree(tmp_path / "gone")
    assert render_report("spring", jobs, results, store, MANIFEST) == expected
