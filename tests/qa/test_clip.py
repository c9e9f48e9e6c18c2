"""CLIP score, zero-shot safety and embedding cache with the tiny open_clip config (random
weights under a fixed seed: the scores mean nothing, the plumbing and the gates are real)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tests.qa.synth import make_job, make_style, noise, scene

from qa import run_qa
from qa.clip import judge, load_clip
from store.keys import embedding_key

TINY = {"clip_model": "brandbatch-tiny-clip", "min_clip_score": 0.0, "clip_uncertainty": 0.0,
        "unsafe_threshold": 1.0, "unsafe_uncertainty": 0.0, "duplicate_cosine": 1.0}


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip("brandbatch-tiny-clip")


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(("cosine", "reasons"), [(0.30, ((), ())), (0.20, ((), ("clip_uncertain",))),
                                                 (0.10, (("low_clip_score",), ())), (-0.5, (("low_clip_score",), ()))])
def test_clip_score_against_threshold_and_band(cosine, reasons):
    image, prompt = unit(1, 0), unit(cosine, np.sqrt(1 - cosine**2))
    finding = judge(image, prompt, np.zeros((0, 2)), (), 100.0, make_style(min_clip_score=0.2, clip_uncertainty=0.03))
    assert (finding.fail, finding.review) == reasons
    assert finding.scores["clip_score"] == pytest.approx(max(cosine, 0.0))


def test_zero_shot_safety_blocks_reviews_and_passes_by_probability_mass():
    image = unit(1, 0, 0)
    prompt, labels, names = unit(0, 1, 0), np.stack([unit(1, 0, 0), unit(0, 0, 1)]), ("weapon", "gore")
    style = make_style(min_clip_score=0.0, clip_uncertainty=0.0, unsafe_threshold=0.5, unsafe_uncertainty=0.1)
    unsafe = judge(image, prompt, labels, names, 100.0, style)
    assert unsafe.fail == ("unsafe",) and unsafe.details["unsafe_label"] == "weapon"
    assert unsafe.scores["unsafe_probability"] > 0.99
    safe = judge(unit(0, 1, 0), prompt, labels, names, 100.0, style)
    assert safe.fail == () and safe.review == () and safe.scores["unsafe_probability"] < 0.01
    unsure = judge(unit(1, 1, 0), prompt, labels, names, 100.0, style)  # prompt and 'weapon' equally close
    assert unsure.review == ("unsafe_uncertain",) and 0.4 < unsure.scores["unsafe_probability"] < 0.6


def test_embeddings_are_cached_by_render_key_and_batch_invariant(store, put_render, tiny_clip):
    jobs = [put_render(make_job(f"a{i}"), noise(i)) for i in range(8)]  # batches of 4 or more use other kernels
    styles = {"acme@2": make_style(**TINY)}
    first = run_qa(jobs, store, styles)
    keys = [embedding_key("brandbatch-tiny-clip@random", j.key) for j in jobs]
    cached = [store.get(k) for k in keys]
    assert all(r.verdict == "pass" and 0.0 <= r.scores["clip_score"] <= 1.0 for r in first)
    alone = tiny_clip.embed_images([Image.fromarray(noise(2))])[0]
    assert np.array_equal(np.load(io.BytesIO(cached[2])), alone), "the same bits as alone, in a batch of 8"
    prompts = tiny_clip.embed_texts([j.prompt for j in jobs])
    assert np.array_equal(prompts[1], tiny_clip.embed_texts([jobs[1].prompt])[0])
    assert run_qa(jobs, store, styles) == first and [store.get(k) for k in keys] == cached


def test_gates_are_configured_by_the_style(store, put_render):
    job = put_render(make_job(), scene())
    [strict] = run_qa([job], store, {"acme@2": make_style(**{**TINY, "min_clip_score": 0.9})})
    assert strict.verdict == "fail" and strict.reasons == ("low_clip_score",)
    [blocked] = run_qa([job], store, {"acme@2": make_style(**{**TINY, "unsafe_threshold": 0.0})})
    assert blocked.reasons == ("unsafe",) and blocked.details["unsafe_label"] in make_style().qa.unsafe_labels


def test_clip_cosine_flags_near_duplicate_variants_when_the_style_says_so(store, put_render):
    jobs = [put_render(make_job("pack", v), noise(v)) for v in (1, 2)]
    loose = run_qa(jobs, store, {"acme@2": make_style(**TINY)})
    assert [r.verdict for r in loose] == ["pass", "pass"] and "duplicate_cosine" in loose[1].scores
    strict = run_qa(jobs, store, {"acme@2": make_style(**{**TINY, "duplicate_cosine": loose[1].scores["duplicate_cosine"] - 0.01})})
    assert strict[1].reasons == ("near_duplicate",) and strict[1].details["duplicate_of"] == jobs[0].key


def test_weights_file_is_loaded_and_names_the_cache(tmp_path, tiny_clip):
    import torch

    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = load_clip("brandbatch-tiny-clip", str(path))
    assert loaded.tag.startswith("brandbatch-tiny-clip@") and loaded.tag != tiny_clip.tag
    image = [Image.fromarray(scene())]
    assert np.allclose(loaded.embed_images(image), tiny_clip.embed_images(image), atol=1e-6)


@pytest.mark.parametrize("qa", [{"clip_model": "no-such-model"}, {"clip_model": "brandbatch-tiny-clip",
                                                                  "clip_weights": "/nonexistent/w.pt"}])
def test_unloadable_clip_model_fails_closed_to_review(store, put_render, qa):
    job = put_render(make_job(), scene())
    [result] = run_qa([job], store, {"acme@2": make_style(**qa)})
    assert result.verdict == "review" and result.reasons == ("check_error:clip",)
    assert "clip_model" in result.details["error:clip"] or "clip_weights" in result.details["error:clip"]
