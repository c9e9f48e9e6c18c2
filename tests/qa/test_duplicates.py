"""Near-duplicate variants by difference hash (CLIP cosine is covered in test_clip.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from tests.qa.synth import make_job, make_style, noise, scene

from qa import run_qa
from qa.duplicates import dhash, hamming

STYLES = {"acme@2": make_style()}


def test_dhash_is_stable_under_small_noise_and_differs_between_pictures():
    base = scene()
    grainy = np.clip(base.astype(np.int16) + np.random.default_rng(1).integers(-3, 4, base.shape), 0, 255)
    assert hamming(dhash(Image.fromarray(base)), dhash(Image.fromarray(grainy.astype(np.uint8)))) <= 4
    assert hamming(dhash(Image.fromarray(base)), dhash(Image.fromarray(noise()))) > 16
    assert hamming(0b1011, 0b0001) == 2


def test_near_identical_later_variant_is_flagged_with_the_earlier_key(store, put_render):
    first = put_render(make_job("pack", 1), scene(seed=1))
    second = put_render(make_job("pack", 2), scene(seed=2))  # same picture, different grain
    other_aspect = put_render(make_job("pack", 3, aspect="4:5"), scene(seed=3))
    other_asset = put_render(make_job("tent", 1), scene(seed=4))
    results = {r.job_key: r for r in run_qa([second, first, other_aspect, other_asset], store, STYLES)}
    assert results[first.key].verdict == "pass"
    assert results[second.key].reasons == ("near_duplicate",)
    assert results[second.key].details["duplicate_of"] == first.key
    assert results[second.key].scores["duplicate_hamming"] <= 4
    assert results[other_aspect.key].verdict == results[other_asset.key].verdict == "pass"


def test_distinct_variants_are_not_flagged_and_hamming_threshold_comes_from_the_style(store, put_render):
    jobs = [put_render(make_job("pack", v), noise(v)) for v in (1, 2, 3)]
    results = run_qa(jobs, store, STYLES)
    assert [r.verdict for r in results] == ["pass"] * 3
    assert results[2].scores["duplicate_hamming"] > 16
    lenient = run_qa(jobs, store, {"acme@2": make_style(duplicate_hamming=64)})
    assert [r.reasons for r in lenient] == [(), ("near_duplicate",), ("near_duplicate",)]
    assert lenient[2].details["duplicate_of"] == jobs[0].key
