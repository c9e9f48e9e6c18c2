"""NaN/black outputs, out-of-memory fallback and the campaign budget, with real tiny pipelines."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from tests.render.jobs import make_job
from diffusers import StableDiffusionPipeline

from render.devices import device_settings
from render.stage import RenderFailure, render_batch, render_missing
from render.tiny import build_tiny
from store.base import StoreError
from store.keys import render_key, sidecar_key
from store.local import LocalStore


def broken_model(folder, fill: float, bias: float = 0.0) -> str:
    """A tiny SD saved as a local model folder whose VAE's last conv outputs ``fill``/``bias``."""
    pipe = build_tiny("brandbatch/tiny-sd")
    with torch.no_grad():
        pipe.vae.decoder.conv_out.weight.fill_(fill)
        pipe.vae.decoder.conv_out.bias.fill_(bias)
    pipe.save_pretrained(folder)
    return str(folder)


def test_nan_and_black_outputs_fail_and_store_nothing(tmp_path):
    nan_job = make_job(1, model_id=broken_model(tmp_path / "nan-model", float("nan")), revision=None)
    black_job = make_job(2, model_id=broken_model(tmp_path / "black-model", 0.0, bias=-10.0), revision=None)
    good = make_job(3)
    store = LocalStore(tmp_path / "out")
    report = render_missing([nan_job, black_job, good], store)
    assert report.rendered == [good.key]
    reasons = {f.job_key: f.reason for f in report.failed}
    assert reasons == {nan_job.key: "nan_output", black_job.key: "black_output"}
    for job in (nan_job, black_job):
        assert not store.exists(render_key(job.key)) and not store.exists(sidecar_key(job.key))


class SmallMemoryPipeline(StableDiffusionPipeline):
    """A real tiny SD pipeline on a pretend-small GPU: more than ``max_batch`` prompts raise CUDA OOM."""

    max_batch = 2

    def __call__(self, prompt, **kwargs):
        self.calls.append(len(prompt))
        if len(prompt) > self.max_batch:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: batch of {len(prompt)} > {self.max_batch}")
        return super().__call__(prompt=prompt, **kwargs)


def small_memory_pipeline(max_batch: int) -> SmallMemoryPipeline:
    pipe = SmallMemoryPipeline.from_pipe(build_tiny("brandbatch/tiny-sd"))
    pipe.set_progress_bar_config(disable=True)
    pipe.calls, pipe.max_batch = [], max_batch
    return pipe


def test_out_of_memory_retries_at_half_size_then_single_images():
    settings = device_settings("cpu", batch_invariant=False)
    jobs = [make_job(i, width=32, height=32, steps=2) for i in range(5)]
    pipe = small_memory_pipeline(max_batch=2)
    results, seconds = render_batch(pipe, jobs, settings)
    assert pipe.calls == [5, 3, 2, 1, 2]  # 5 -> OOM; 3 -> OOM; 2 ok; 1 ok; 2 ok
    assert len(results) == 5 and not any(isinstance(r, RenderFailure) for r in results)
    assert all(r.shape == (32, 32, 3) for r in results) and seconds > 0
    expected, _ = render_batch(small_memory_pipeline(max_batch=1), jobs[3:4], settings)
    # same job, same image after the fallback (up to float rounding: batch_invariant is off here)
    assert abs(results[3] - expected[0]).max() < 1e-4


def test_out_of_memory_on_a_single_image_fails_that_job():
    settings = device_settings("cpu", batch_invariant=False)
    jobs = [make_job(i, width=32, height=32, steps=2) for i in range(2)]
    results, _ = render_batch(small_memory_pipeline(max_batch=0), jobs, settings)
    assert [r.reason for r in results] == ["oom", "oom"]
    assert "even for a single 32x32 image" in results[0].message


class PoisonPromptPipeline(StableDiffusionPipeline):
    """A real tiny SD pipeline that cannot render a prompt containing 'poison'."""

    def __call__(self, prompt, **kwargs):
        if any("poison" in p for p in prompt):
            raise ValueError("this pipeline cannot render 'poison'")
        return super().__call__(prompt=prompt, **kwargs)


@pytest.mark.parametrize("batch_invariant", [True, False])
def test_a_bad_job_fails_alone_and_its_batch_mates_render(batch_invariant):
    settings = device_settings("cpu", batch_invariant=batch_invariant)
    pipe = PoisonPromptPipeline.from_pipe(build_tiny("brandbatch/tiny-sd"))
    pipe.set_progress_bar_config(disable=True)
    jobs = [make_job(i, width=32, height=32, steps=2) for i in range(3)]
    jobs[1] = dataclasses.replace(jobs[1], prompt="a poison bottle")
    results, _ = render_batch(pipe, jobs, settings)
    assert [type(r).__name__ for r in results] == ["ndarray", "RenderFailure", "ndarray"]
    assert results[1] == RenderFailure(jobs[1].key, "error", "ValueError: this pipeline cannot render 'poison'")


def test_image_budget_stops_new_batches_and_resumes(tmp_path):
    jobs = [make_job(i, width=32, height=32, steps=2) for i in range(5)] + [make_job(9, "sdxl", width=32, height=32)]
    store = LocalStore(tmp_path)
    report = render_missing(jobs, store, batch_size=2, max_images=3)
    assert len(report.rendered) == 3
    assert [f.reason for f in report.failed] == ["budget"] * 3
    assert "max_images=3" in report.failed[0].message
    assert set(report.job_seconds) == set(report.rendered)
    assert sum(report.job_seconds.values()) == pytest.approx(report.gpu_seconds)
    for key in report.rendered:
        assert json.loads(store.get(sidecar_key(key)))["seconds"] > 0
    rest = render_missing(jobs, store, batch_size=2)
    assert len(rest.cached) == 3 and len(rest.rendered) == 3 and rest.failed == []


def test_seconds_budget_stops_after_the_first_batch(tmp_path):
    jobs = [make_job(i, width=32, height=32, steps=2) for i in range(4)]
    report = render_missing(jobs, LocalStore(tmp_path), batch_size=2, max_gpu_seconds=1e-9)
    assert len(report.rendered) == 2  # the first batch starts; none after it
    assert [f.reason for f in report.failed] == ["budget", "budget"]
    assert "max_gpu_seconds=1e-09" in report.failed[0].message


def test_negative_budget_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_images must be >= 0 but is -1"):
        render_missing([make_job(1)], LocalStore(tmp_path), max_images=-1)


def test_a_store_that_cannot_be_written_stops_the_run_clearly(tmp_path):
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("a file where the store's folder should be")
    done: list[str] = []
    jobs = [make_job(i, width=32, height=32, steps=1) for i in range(3)]
    with pytest.raises(StoreError, match=r"cannot write .*out/renders/.*\.json: Not a directory .*rendering stopped "
                                         r"with 0 of 3 renders in the store \(rerun to resume"):
        render_missing(jobs, LocalStore(not_a_folder), batch_size=1, on_done=done.append)
    assert done == []
