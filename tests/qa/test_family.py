"""Cross-ratio QA of creative families, on a family rendered by the tiny SD + SD-inpaint models."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from tests.qa.synth import make_style, png
from tests.render.jobs import make_family

from qa import run_qa
from qa.family import seam_ratio
from render.expand import master_box
from render.stage import render_missing
from review.queue import variant_verdict
from store.documents import RenderSidecar, read_document, write_document
from store.keys import render_key, sidecar_key

TINY_CLIP = {"clip_model": "brandbatch-tiny-clip", "min_clip_score": 0.0, "clip_uncertainty": 0.0,
             "unsafe_labels": []}


def replace_render(store, job, image) -> None:
    """Store ``image`` as the job's render, as if the model had made it (the sidecar records its
    sha256, so QA checks the pixels rather than refusing a damaged file)."""
    data = png(image)
    sidecar = read_document(store, sidecar_key(job.key), RenderSidecar)
    store.put(render_key(job.key), data, overwrite=True)
    write_document(store, sidecar_key(job.key), sidecar.model_copy(update={"sha256": hashlib.sha256(data).hexdigest()}))


@pytest.fixture
def family(store):
    jobs = make_family(1, "sd", expand_model="brandbatch/tiny-sd-inpaint")
    assert render_missing(jobs, store, batch_size=3).failed == []
    return jobs


def pixels(store, job) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(store.get(render_key(job.key)))).convert("RGB"))


def styles(**qa):
    return {"acme@2": make_style(**qa)}


def test_a_rendered_family_passes_and_records_its_scores(store, family):
    results = run_qa(family, store, styles())
    assert [r.verdict for r in results] == ["pass"] * 3, [r.reasons for r in results]
    assert "seam_ratio" not in results[0].scores  # the master has no master
    for result, job in zip(results[1:], family[1:]):
        assert 0 < result.scores["seam_ratio"] <= make_style().qa.max_seam_ratio
        assert result.details["master_job_key"] == family[0].key


def test_a_broken_seam_routes_the_family_to_review(store, family):
    master = pixels(store, family[0])
    broken = pixels(store, family[1])
    left, top, right, bottom = master_box(Image.fromarray(master), family[1])
    outside = np.ones(broken.shape[:2], bool)
    outside[top:bottom, left:right] = False
    broken[outside] = (255, 255, 255)  # new area painted flat white: a hard edge at the master's border
    replace_render(store, family[1], broken)
    results = run_qa(family, store, styles())
    assert results[1].verdict == "review" and results[1].reasons == ("family_seam",)
    assert results[1].scores["seam_ratio"] > make_style().qa.max_seam_ratio
    assert variant_verdict(results) == "review"  # the whole family waits for a designer, none exports
    assert run_qa(family, store, styles(max_seam_ratio=1e6))[1].verdict == "pass"  # the gate is the style's


def test_changed_master_pixels_fail_closed_to_review(store, family):
    changed = pixels(store, family[2])
    left, top, _, _ = master_box(Image.fromarray(pixels(store, family[0])), family[2])
    changed[top + 5, left + 5] = 255 - changed[top + 5, left + 5]
    replace_render(store, family[2], changed)
    result = run_qa(family, store, styles())[2]
    assert result.verdict == "review" and "family_master_changed" in result.reasons
    assert "1 master pixels differ" in result.details["family_master_changed"]


def test_a_missing_master_sends_its_expansions_to_review(store, family):
    store.delete(render_key(family[0].key))
    results = run_qa(family[1:], store, styles())
    assert [r.reasons for r in results] == [("family_master_missing",)] * 2


def test_clip_similarity_to_the_master_is_gated_by_the_style(store, family):
    loose = run_qa(family, store, styles(**TINY_CLIP, min_family_similarity=-1.0))
    assert [r.verdict for r in loose] == ["pass"] * 3
    similarity = loose[1].scores["family_similarity"]
    strict = run_qa(family, store, styles(**TINY_CLIP, min_family_similarity=similarity + 0.001))
    assert strict[1].verdict == "review" and strict[1].reasons == ("family_low_similarity",)


def test_a_rerun_keeps_the_family_check_of_the_same_master_and_expansion_bytes_only(store, family, monkeypatch):
    """Kept with the sha256s of both renders it compared; with a CLIP model the similarity is
    part of the check, so it runs every time; without the master's bytes it is checked again."""
    import qa.stage

    checked: list[str] = []
    real = qa.stage.family_checks
    monkeypatch.setattr(qa.stage, "family_checks", lambda jobs, *args: checked.extend(
        j.key for j in jobs if j.is_expansion) or real(jobs, *args))
    expansions = [job.key for job in family[1:]]
    first = [r.to_json() for r in run_qa(family, store, styles())]
    assert checked == expansions
    assert [r.to_json() for r in run_qa(family, store, styles())] == first and checked == expansions  # kept
    replace_render(store, family[1], pixels(store, family[1]) // 2 * 2)  # other bytes under one expansion's key
    run_qa(family, store, styles())
    assert checked == expansions + expansions[:1]
    master = store.get(render_key(family[0].key))
    store.delete(render_key(family[0].key))
    assert [r.reasons for r in run_qa(family[1:], store, styles())] == [("family_master_missing",)] * 2
    assert checked == expansions + expansions[:1] + expansions  # never kept without the master's bytes
    store.put(render_key(family[0].key), master)
    assert [r.to_json() for r in run_qa(family, store, styles())][2] == first[2]  # the same bytes: kept again
    assert checked == expansions + expansions[:1] + expansions
    del checked[:]
    for _ in range(2):
        run_qa(family, store, styles(**TINY_CLIP, min_family_similarity=-1.0))
    assert checked == expansions + expansions  # with CLIP: checked each run


def test_seam_ratio_compares_the_border_step_with_the_pictures_own_detail():
    rng = np.random.default_rng(0)
    smooth = np.clip(rng.normal(128, 10, (40, 20, 3)), 0, 255).astype(np.uint8)
    box = (0, 10, 20, 30)
    assert seam_ratio(smooth, box) == pytest.approx(1.0, abs=0.3)
    cut = smooth.copy()
    cut[:10] = 0
    assert seam_ratio(cut, box) > 5
    assert seam_ratio(smooth, (0, 0, 20, 40)) == 0.0  # no new area, no seam


def test_the_report_shows_each_master_with_its_expansions(store, family):
    from qa import render_report

    html = render_report("spring", family, run_qa(family, store, styles()), store, [])
    assert html.count("master of 2 expansions") == 1
    assert html.count(f"expansion of master {family[0].key[:12]}") == 2
