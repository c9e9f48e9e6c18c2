"""run_qa over a store: results in job order, stored JSON, determinism, fail closed."""

from __future__ import annotations

import json

import pytest
from tests.qa.synth import make_job, make_style, noise, scene, solid

from qa import QAResult, run_qa
from qa.stage import RENDER_CHECKS
from qa.verdicts import in_spot_check
from store.keys import checks_key

STYLES = {"acme@2": make_style()}


def test_results_come_back_in_job_order_and_are_written_as_json(store, put_render):
    jobs = [put_render(make_job("good", 1), scene()), put_render(make_job("black", 1), solid((0, 0, 0))),
            put_render(make_job("noisy", 1), noise())]
    results = run_qa(jobs, store, STYLES)
    assert [r.job_key for r in results] == [j.key for j in jobs]
    assert [r.verdict for r in results] == ["pass", "fail", "pass"]
    assert "blank" in results[1].reasons
    for result in results:
        stored = store.get(f"qa/{result.job_key}.json")
        assert stored == result.to_json()
        assert QAResult.from_dict(json.loads(stored)).verdict == result.verdict


def test_same_renders_give_byte_identical_results(store, put_render):
    jobs = [put_render(make_job(f"a{i}", 1), noise(i)) for i in range(3)]
    first = [store.get(f"qa/{r.job_key}.json") for r in run_qa(jobs, store, STYLES)]
    second = [store.get(f"qa/{r.job_key}.json") for r in run_qa(jobs, store, STYLES)]
    assert first == second


def test_wrong_size_render_fails(store, put_render):
    job = put_render(make_job(width=128, height=160), scene(128, 128))
    [result] = run_qa([job], store, STYLES)
    assert result.verdict == "fail" and result.reasons == ("wrong_size",)
    assert result.details["size"] == "128x128, expected 128x160"


def test_missing_render_goes_to_review_and_garbage_fails(store):
    missing, garbage = make_job("missing"), make_job("garbage")
    store.put(f"renders/{garbage.key}.png", b"not a png")
    results = run_qa([missing, garbage], store, STYLES)
    assert (results[0].verdict, results[0].reasons) == ("review", ("render_missing",))
    assert (results[1].verdict, results[1].reasons) == ("fail", ("render_undecodable",))
    assert results[1].details["render"].startswith(f"renders/{garbage.key}.png: ")


def test_unknown_style_goes_to_review(store, put_render):
    job = put_render(make_job(style_version=9), scene())
    [result] = run_qa([job], store, STYLES)
    assert (result.verdict, result.reasons, result.details) == ("review", ("style_unknown",), {"style": "acme@9"})


def test_a_check_that_raises_sends_the_render_to_review_with_the_error(store, put_render):
    def broken(img, job, style):
        raise RuntimeError("palette file unreadable")

    job, failing = put_render(make_job(), scene()), put_render(make_job("black"), solid((0, 0, 0)))
    result, other = run_qa([job, failing], store, STYLES, {**RENDER_CHECKS, "palette": broken})
    assert result.verdict == "review" and result.reasons == ("check_error:palette",)
    assert result.details["error:palette"] == "RuntimeError: palette file unreadable"
    assert other.verdict == "fail" and other.reasons[-1] == "check_error:palette"


@pytest.mark.parametrize("rate", [0.05])
def test_style_sample_rate_sends_the_same_passing_renders_to_review(store, put_render, rate):
    jobs = [put_render(make_job(f"asset-{i}"), noise(i)) for i in range(60)]
    results = run_qa(jobs, store, {"acme@2": make_style(review_sample_rate=rate)})
    sampled = [r.job_key for r in results if r.reasons == ("sampled",)]
    assert sampled and sampled == [j.key for j in jobs if in_spot_check(j.key, rate)]
    assert all(r.verdict == ("review" if r.job_key in sampled else "pass") for r in results)


def _counting(calls: list[str]):
    """RENDER_CHECKS with a palette check that records each job it checked (a module-level
    function's code, so the fingerprint is stable)."""
    def palette(img, job, style):
        calls.append(job.row_key)
        return RENDER_CHECKS["palette"](img, job, style)
    return {**RENDER_CHECKS, "palette": palette}


def test_a_rerun_reuses_kept_findings_and_gives_the_same_results(store, put_render):
    jobs = [put_render(make_job(f"a{i}"), noise(i)) for i in range(3)] + [put_render(make_job("black"), solid((0, 0, 0)))]
    calls: list[str] = []
    first = [r.to_json() for r in run_qa(jobs, store, STYLES, _counting(calls))]
    assert len(calls) == 4 and all(store.exists(checks_key(j.key)) for j in jobs)
    second = [r.to_json() for r in run_qa(jobs, store, STYLES, _counting(calls))]
    assert second == first and len(calls) == 4  # nothing decoded or checked again


def test_kept_findings_are_not_used_for_another_style_a_torn_file_or_a_missing_render(store, put_render):
    jobs = [put_render(make_job(f"a{i}"), noise(i)) for i in range(3)]
    calls: list[str] = []
    run_qa(jobs, store, STYLES, _counting(calls))
    run_qa(jobs, store, {"acme@2": make_style(min_sharpness=1.0)}, _counting(calls))
    assert len(calls) == 6  # other thresholds: every render checked again
    store.put(checks_key(jobs[0].key), b'{"fingerprint": "tor', overwrite=True)
    store.delete(f"renders/{jobs[1].key}.png")
    results = run_qa(jobs, store, {"acme@2": make_style(min_sharpness=1.0)}, _counting(calls))
    assert len(calls) == 7  # only the torn one
    assert results[1].reasons == ("render_missing",)


def test_findings_of_a_check_that_raised_are_not_kept(store, put_render):
    def broken(img, job, style):
        raise RuntimeError("palette file unreadable")

    job = put_render(make_job(), scene())
    run_qa([job], store, STYLES, {**RENDER_CHECKS, "palette": broken})
    assert not store.exists(checks_key(job.key))
    [result] = run_qa([job], store, STYLES)
    assert result.verdict == "pass"
