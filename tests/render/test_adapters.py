"""Brand models: LoRA adapters pinned by sha256, loaded through peft into the tiny models."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from tests.render.jobs import make_family, make_job

from render.registry import load_pipeline
from render.stage import render_missing
from render.tiny import save_tiny_lora
from store.keys import render_key
from store.local import LocalStore


def lora(folder: Path, family: str = "sd", seed: int = 1) -> tuple[str, str]:
    path = folder / f"brand-{family}-{seed}.safetensors"
    if not path.is_file():
        save_tiny_lora(path, family, seed)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def with_adapters(job, *adapters):
    return replace(job, adapters=tuple(adapters))


def test_lora_changes_pixels_and_keys_and_its_scale_counts(tmp_path):
    path, sha = lora(tmp_path)
    base = make_job(1)
    jobs = [base, *(with_adapters(base, (path, sha, scale)) for scale in (0.0, 1.0))]
    assert len({j.key for j in jobs}) == 3  # scale 0 and 1 are different jobs
    store = LocalStore(tmp_path / "out")
    assert render_missing(jobs, store).failed == []
    plain, zero, one = (store.get(render_key(j.key)) for j in jobs)
    assert zero == plain  # scale 0: the LoRA adds nothing
    assert one != plain  # the brand model changed the pixels


def test_key_holds_hashes_and_scales_not_paths(tmp_path):
    path, sha = lora(tmp_path)
    job = with_adapters(make_job(1), (path, sha, 0.8))
    assert job.key == with_adapters(make_job(1), ("/elsewhere/brand.safetensors", sha, 0.8)).key
    assert job.key != with_adapters(make_job(1), (path, sha, 0.7)).key
    assert job.key != with_adapters(make_job(1), (path, "0" * 64, 0.8)).key
    assert job.key != make_job(1).key
    two = with_adapters(make_job(1), (path, sha, 0.8), (path, "1" * 64, 0.5))
    assert two.key != job.key and two.group != job.group


def test_sha256_mismatch_is_refused_before_loading_and_nothing_renders(tmp_path):
    path, sha = lora(tmp_path)
    other_path, other_sha = lora(tmp_path, seed=2)
    jobs = [with_adapters(make_job(i), (other_path, other_sha, 1.0), (path, other_sha, 1.0)) for i in range(2)]
    load_pipeline.cache_clear()
    store = LocalStore(tmp_path / "out")
    report = render_missing(jobs, store)
    assert report.rendered == [] and {f.reason for f in report.failed} == {"model_error"}
    message = report.failed[0].message
    assert path in message and sha in message and other_sha in message  # the file, actual and pinned hash
    assert load_pipeline.cache_info().currsize == 0  # no pipeline was built
    assert not any(store.exists(render_key(j.key)) for j in jobs)


def test_same_base_and_adapters_are_built_once_per_run(tmp_path):
    """Groups of one build (model + adapter set) share one pipeline, whatever their size,
    scheduler or order, and the expansions of a family reuse the adapters."""
    path, sha = lora(tmp_path)
    adapters = ((path, sha, 0.7),)
    jobs = [with_adapters(make_job(i, width=w, scheduler=s), *adapters)
            for i, (w, s) in enumerate([(64, "euler"), (48, "ddim"), (64, "euler_a")])]
    jobs += [make_job(10), with_adapters(make_job(11, width=48), *adapters), make_job(12, scheduler="ddim")]
    family = [with_adapters(j, *adapters) for j in make_family(20)]
    family = [replace(j, master_key=family[0].key) if j.is_expansion else j for j in family]
    load_pipeline.cache_clear()
    report = render_missing(jobs + family, LocalStore(tmp_path / "out"))
    assert report.failed == []
    assert load_pipeline.cache_info().misses == 2  # tiny-sd with the LoRA, tiny-sd without


def test_sdxl_lora_renders_deterministically(tmp_path):
    path, sha = lora(tmp_path, "sdxl")
    job = with_adapters(make_job(1, "sdxl"), (path, sha, 1.0))
    first, second = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    assert render_missing([job], first).failed == []
    load_pipeline.cache_clear()
    assert render_missing([job, make_job(1, "sdxl")], second).failed == []
    assert first.get(render_key(job.key)) == second.get(render_key(job.key))
    assert second.get(render_key(job.key)) != second.get(render_key(make_job(1, "sdxl").key))


@pytest.mark.parametrize("family", ["sd3"])
def test_a_lora_for_another_model_fails_its_jobs_with_a_clear_error(tmp_path, family):
    path, sha = lora(tmp_path, "sd")
    job = with_adapters(make_job(1, family, scheduler="flow_euler"), (path, sha, 1.0))
    report = render_missing([job], LocalStore(tmp_path / "out"))
    assert [f.reason for f in report.failed] == ["model_error"]
    assert path in report.failed[0].message


def test_the_example_brand_lora_is_what_the_project_makes(tmp_path, repo):
    """styles/nordic/brand/house-look.safetensors (pinned by nordic@2) is made by
    styles/nordic/brand/make.py: the same weights come out of render.tiny.save_tiny_lora."""
    import torch
    from safetensors.torch import load_file

    save_tiny_lora(tmp_path / "made.safetensors", "sdxl", seed=7)
    shipped, made = load_file(repo / "styles/nordic/brand/house-look.safetensors"), load_file(tmp_path / "made.safetensors")
    assert shipped.keys() == made.keys() and all(torch.equal(shipped[k], made[k]) for k in made)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_textual_inversion_token_changes_pixels_and_is_pinned(tmp_path, family):
    """An embedding for <brand-look> (diffusers' load_textual_inversion, both SDXL encoders) changes
    the render of a prompt that uses the token; its hash and token are in the key; a changed file
    is refused before loading."""
    from render.tiny import save_tiny_embedding

    path = tmp_path / "look.safetensors"
    save_tiny_embedding(path, family, "<brand-look>")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    base = replace(make_job(1, family), prompt="a red hiking boot, <brand-look>")
    learnt = replace(base, embeddings=((str(path), sha, "<brand-look>"),))
    assert learnt.key != base.key and learnt.key != replace(learnt, embeddings=((str(path), sha, "<other>"),)).key
    store = LocalStore(tmp_path / "out")
    assert render_missing([base, learnt], store).failed == []
    assert store.get(render_key(learnt.key)) != store.get(render_key(base.key))
    again = LocalStore(tmp_path / "again")
    load_pipeline.cache_clear()
    assert render_missing([learnt], again).failed == []
    assert again.get(render_key(learnt.key)) == store.get(render_key(learnt.key))
    stale = replace(learnt, embeddings=((str(path), "0" * 64, "<brand-look>"),))
    failed = render_missing([stale], LocalStore(tmp_path / "stale")).failed
    assert [f.reason for f in failed] == ["model_error"] and str(path) in failed[0].message and sha in failed[0].message
