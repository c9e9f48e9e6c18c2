from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.render.jobs import make_job

from render.stage import RenderFailure, render_missing
from store.keys import render_key, sidecar_key
from store.local import LocalStore

REPO = Path(__file__).resolve().parents[2]


def pngs(store: LocalStore, jobs) -> dict[str, bytes]:
    return {j.key: store.get(render_key(j.key)) for j in jobs}


def pixels(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_renders_every_job_with_sidecar_and_real_pixels(tmp_path, mixed_jobs):
    store = LocalStore(tmp_path)
    done: list[str] = []
    report = render_missing(mixed_jobs, store, batch_size=4, on_done=done.append)
    assert report.failed == []
    assert sorted(report.rendered) == sorted(j.key for j in mixed_jobs)
    assert sorted(done) == sorted(report.rendered)
    assert report.gpu_seconds > 0
    for job in mixed_jobs:
        image = pixels(store.get(render_key(job.key)))
        assert image.shape == (job.height, job.width, 3)
        assert image.std() > 10  # noise-like, not a flat colour
        sidecar = json.loads(store.get(sidecar_key(job.key)))
        assert sidecar["job_key"] == job.key and sidecar["seed"] == job.seed
        assert sidecar["device"] == "cpu" and sidecar["dtype"] == "float32" and sidecar["seconds"] > 0
    assert len(set(pngs(store, mixed_jobs).values())) == len(mixed_jobs)  # different seeds, different images


def test_pixels_do_not_depend_on_batch_size_or_order(tmp_path, mixed_jobs):
    reference = None
    for n, batch_size in enumerate((1, 3, 8)):
        jobs = list(mixed_jobs)
        random.Random(n).shuffle(jobs)
        store = LocalStore(tmp_path / f"b{batch_size}")
        assert render_missing(jobs, store, batch_size=batch_size).failed == []
        result = pngs(store, mixed_jobs)
        reference = reference or result
        assert result == reference, f"batch size {batch_size} changed pixels"


def test_same_pixels_in_a_fresh_process(tmp_path, mixed_jobs):
    here = LocalStore(tmp_path / "here")
    render_missing(mixed_jobs, here)
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps([j.to_dict() for j in mixed_jobs]))
    script = (
        "import json, sys\n"
        "from plan.jobs import RenderJob\nfrom render.stage import render_missing\nfrom store.local import LocalStore\n"
        "jobs = [RenderJob.from_dict(d) for d in json.load(open(sys.argv[1]))]\n"
        "report = render_missing(list(reversed(jobs)), LocalStore(sys.argv[2]), batch_size=2)\n"
        "assert not report.failed, report.failed\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script, str(jobs_file), str(tmp_path / "there")], check=True, env=env,
                   cwd=REPO, timeout=300)
    assert pngs(LocalStore(tmp_path / "there"), mixed_jobs) == pngs(here, mixed_jobs)


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_flow_matching_families_are_batch_invariant_too(tmp_path, family):
    jobs = [make_job(i, family, width=32, height=48, scheduler="flow_euler") for i in range(3)]
    one, three = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "three")
    assert render_missing(jobs, one, batch_size=1).failed == []
    assert render_missing(jobs[::-1], three, batch_size=3).failed == []
    assert pngs(one, jobs) == pngs(three, jobs)
    assert pixels(one.get(render_key(jobs[0].key))).std() > 10


def test_second_run_renders_nothing(tmp_path, mixed_jobs):
    store = LocalStore(tmp_path)
    first = render_missing(mixed_jobs[:4], store)
    assert len(first.rendered) == 4
    before = pngs(store, mixed_jobs[:4])
    done: list[str] = []
    second = render_missing(mixed_jobs + mixed_jobs[:1], store, on_done=done.append)
    assert sorted(second.cached) == sorted(first.rendered)
    assert sorted(second.rendered) == sorted(j.key for j in mixed_jobs[4:])
    assert len(done) == len(mixed_jobs) + 1  # one call per job given, duplicates included
    assert pngs(store, mixed_jobs[:4]) == before
    third = render_missing(mixed_jobs, store)
    assert third.rendered == [] and len(third.cached) == len(mixed_jobs) and third.gpu_seconds == 0


def test_bad_model_fails_its_jobs_only(tmp_path):
    good = [make_job(1), make_job(2, "sdxl")]
    missing_repo = make_job(3, model_id="acme/not-downloaded", revision="0" * 40)
    unpinned = make_job(4, model_id="acme/not-downloaded", revision="main")
    no_folder = make_job(5, model_id=str(tmp_path / "no-such-model"))
    unknown_tiny = make_job(6, model_id="brandbatch/tiny-nope")
    report = render_missing([missing_repo, good[0], unpinned, no_folder, unknown_tiny, good[1]],
                            LocalStore(tmp_path / "out"))
    assert sorted(report.rendered) == sorted(j.key for j in good)
    failures = {f.job_key: f for f in report.failed}
    assert {f.reason for f in failures.values()} == {"model_error"}
    assert "acme/not-downloaded" in failures[missing_repo.key].message
    assert "0" * 40 in failures[missing_repo.key].message and "cache" in failures[missing_repo.key].message
    assert "'main'" in failures[unpinned.key].message and "commit hash" in failures[unpinned.key].message
    assert "no-such-model" in failures[no_folder.key].message
    assert "brandbatch/tiny-sd" in failures[unknown_tiny.key].message
    assert not LocalStore(tmp_path / "out").exists(render_key(missing_repo.key))


def test_scheduler_that_does_not_fit_the_family_fails_clearly(tmp_path):
    job, flux_job = make_job(1, scheduler="flow_euler"), make_job(3, "flux", scheduler="ddim")
    report = render_missing([job, make_job(2), flux_job], LocalStore(tmp_path))
    assert len(report.rendered) == 1
    failures = {f.job_key: f for f in report.failed}
    assert failures[job.key] == RenderFailure(job.key, "model_error", failures[job.key].message)
    assert "'flow_euler'" in failures[job.key].message and "euler_a" in failures[job.key].message
    assert "'ddim'" in failures[flux_job.key].message and "flux" in failures[flux_job.key].message


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "ddim", "dpmpp_2m", "pndm"])
def test_every_scheduler_renders(tmp_path, scheduler):
    report = render_missing([make_job(1, scheduler=scheduler, width=32, height=32, steps=4)], LocalStore(tmp_path))
    assert report.failed == [] and len(report.rendered) == 1


def test_batch_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="batch_size must be >= 1 but is 0"):
        render_missing([make_job(1)], LocalStore(tmp_path), batch_size=0)


def two_buckets(rows: range) -> tuple[list, list]:
    """A square and a portrait job per row (two groups of one build, as two aspects of a style)."""
    return [make_job(i, steps=2) for i in rows], [make_job(i, steps=2, width=64, height=96) for i in rows]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_resolution_buckets_take_turns_so_rows_finish_one_by_one(tmp_path, batch_size):
    """Batch-invariant mode (the default): the groups take turns image by image, whatever the batch
    size, so a row's square and portrait renders finish before the next row's (pipeline.stream
    starts QA and export of a row as soon as all its renders are done)."""
    rows = range(3)
    square, portrait = two_buckets(rows)
    done: list[str] = []
    report = render_missing(square + portrait, LocalStore(tmp_path), batch_size=batch_size, on_done=done.append)
    assert report.failed == []
    assert done == [job.key for i in rows for job in (square[i], portrait[i])]


def test_batched_pipeline_calls_keep_their_size_and_take_turns_batch_by_batch(tmp_path):
    """With batch invariance off a batch is one pipeline call: it is never cut for the turns."""
    square, portrait = two_buckets(range(3))
    done: list[str] = []
    report = render_missing(square + portrait, LocalStore(tmp_path), batch_size=2, batch_invariant=False,
                            on_done=done.append)
    assert report.failed == []
    assert done == [job.key for job in square[:2] + portrait[:2] + square[2:] + portrait[2:]]
    assert len({report.job_seconds[job.key] for job in square[:2]}) == 1  # one call's seconds, shared


def test_image_budget_counts_the_batches_other_buckets_started(tmp_path):
    """Buckets render side by side: a batch that starts leaves room only for what the batches
    already started will not render, so the budget holds and picks the same jobs as bucket by bucket."""
    square, portrait = two_buckets(range(3))
    report = render_missing(square + portrait, LocalStore(tmp_path), batch_size=2, max_images=3)
    assert sorted(report.rendered) == sorted(job.key for job in (square[0], square[1], portrait[0]))
    assert sorted(f.job_key for f in report.failed if f.reason == "budget") == sorted(
        job.key for job in (square[2], portrait[1], portrait[2]))


def test_seconds_budget_lets_the_started_batch_finish_and_starts_no_other_bucket(tmp_path):
    square, portrait = two_buckets(range(3))
    report = render_missing(square + portrait, LocalStore(tmp_path), batch_size=2, max_gpu_seconds=1e-9)
    assert sorted(report.rendered) == sorted(job.key for job in square[:2])  # the first batch started finishes
    assert sorted(f.job_key for f in report.failed) == sorted(job.key for job in square[2:] + portrait)
