"""The render stage: render the jobs whose PNG is not in the store yet, in batches.

Jobs are grouped by ``RenderJob.group`` (same model, size, scheduler, steps, guidance) and
run in batches; each image has its own ``torch.Generator`` seeded with ``job.seed``. By
default (batch-invariant mode) the pipeline is called once per image inside a batch, because
CPU/GPU kernels round differently for different batch shapes: pixels then never depend on
batch size, order or neighbours. One bad job or batch never stops the rest.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from plan.jobs import RenderJob
from render.devices import DeviceSettings, device_settings
from render.registry import ModelError, pipeline_for
from store.base import Store

BLACK_MAX = 2  # an image whose brightest channel value is at most this (of 255) is black


@dataclass(frozen=True)
class RenderFailure:
    """A job that produced no render. ``reason``: model_error, nan_output, black_output, oom,
    budget or error."""

    job_key: str
    reason: str
    message: str


@dataclass
class RenderReport:
    rendered: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[RenderFailure] = field(default_factory=list)
    gpu_seconds: float = 0.0  # device seconds spent in pipeline calls (CPU seconds on CPU)
    job_seconds: dict[str, float] = field(default_factory=dict)  # job key -> its share of its batch's seconds


def render_key(job_key: str) -> str:
    return f"renders/{job_key}.png"


def sidecar_key(job_key: str) -> str:
    return f"renders/{job_key}.json"


def encode_png(pixels) -> bytes:
    """uint8 HxWx3 array -> PNG bytes with no metadata (same pixels, same bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def check_pixels(job_key: str, image) -> tuple[object | None, RenderFailure | None]:
    """float HxWx3 image in [0, 1] -> (uint8 pixels, None), or (None, failure) for NaN/black."""
    import numpy as np

    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).any(axis=-1).sum())
        return None, RenderFailure(job_key, "nan_output", f"the model produced NaN/inf in {bad} of "
                                   f"{image.shape[0] * image.shape[1]} pixels (fp16 VAE overflow?); nothing stored")
    pixels = (image * 255).round().clip(0, 255).astype("uint8")
    if int(pixels.max()) <= BLACK_MAX:
        return None, RenderFailure(job_key, "black_output", "the model produced a black image (safety checker or "
                                   "VAE overflow); nothing stored")
    return pixels, None


def generators(jobs: Sequence[RenderJob], settings: DeviceSettings) -> list:
    """One generator per image, seeded with the job's own seed."""
    import torch

    return [torch.Generator(settings.device).manual_seed(job.seed) for job in jobs]


def call_pipeline(pipe, jobs: Sequence[RenderJob], settings: DeviceSettings):
    """Float images (N, H, W, 3) in [0, 1] for jobs of one group, in job order: one pipeline call."""
    import torch

    first = jobs[0]
    kwargs = dict(height=first.height, width=first.width, num_inference_steps=first.steps,
                  guidance_scale=first.guidance, output_type="np")
    if first.model_family != "flux":  # FLUX is guidance-distilled: no negative prompt
        kwargs["negative_prompt"] = [j.negative_prompt for j in jobs]
    with torch.inference_mode():
        return pipe(prompt=[j.prompt for j in jobs], generator=generators(jobs, settings), **kwargs).images


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)


def render_batch(pipe, jobs: Sequence[RenderJob], settings: DeviceSettings) -> tuple[list, float]:
    """([float image or RenderFailure per job], seconds).

    Batch-invariant mode: one pipeline call per image. Otherwise one call for the batch; out of
    device memory, it is retried at half the size down to single images; on any other error
    each job is retried alone, so one bad job fails only itself."""
    if len(jobs) > 1 and settings.batch_invariant:
        parts = [render_batch(pipe, [job], settings) for job in jobs]
        return [r for results, _ in parts for r in results], sum(seconds for _, seconds in parts)
    start = time.perf_counter()
    try:
        images = list(call_pipeline(pipe, jobs, settings))
        return images, time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the run
        seconds = time.perf_counter() - start
        oom = is_oom(exc)
        if oom:
            _free_device_memory(settings)
        if len(jobs) > 1:
            half = (len(jobs) + 1) // 2 if oom else 1
            parts = [render_batch(pipe, jobs[i:i + half], settings) for i in range(0, len(jobs), half)]
            return [r for results, _ in parts for r in results], seconds + sum(s for _, s in parts)
        if oom:
            return [RenderFailure(jobs[0].key, "oom", f"out of device memory on {settings.device} even for a "
                                  f"single {jobs[0].width}x{jobs[0].height} image: {exc}")], seconds
        return [RenderFailure(jobs[0].key, "error", f"{type(exc).__name__}: {exc}")], seconds


def _free_device_memory(settings: DeviceSettings) -> None:
    import torch

    if settings.kind == "cuda":
        torch.cuda.empty_cache()


def _keep(store: Store, job: RenderJob, image, settings: DeviceSettings, seconds: float) -> RenderFailure | None:
    """Check one float image and store it; the failure if it is NaN/black or cannot be stored."""
    pixels, failure = check_pixels(job.key, image)
    if failure is not None:
        return failure
    try:
        _store_render(store, job, pixels, settings, seconds)
    except Exception as exc:  # noqa: BLE001 - a store error fails this job only
        return RenderFailure(job.key, "error", f"storing the render failed: {type(exc).__name__}: {exc}")
    return None


def _store_render(store: Store, job: RenderJob, pixels, settings: DeviceSettings, seconds: float) -> None:
    """Sidecar first, then the PNG: a PNG in the store always has its sidecar."""
    sidecar = {**job.to_dict(), **asdict(settings), "job_key": job.key, "seconds": round(seconds, 4)}
    store.put(sidecar_key(job.key), json.dumps(sidecar, sort_keys=True, indent=1).encode("utf-8"),
              content_type="application/json", overwrite=True)
    store.put(render_key(job.key), encode_png(pixels), content_type="image/png")


def _over_budget(report: RenderReport, max_images: int | None, max_gpu_seconds: float | None) -> str:
    """Why no new batch may start ('' when within budget)."""
    if max_images is not None and len(report.rendered) >= max_images:
        return (f"campaign budget reached: max_images={max_images} and {len(report.rendered)} images were "
                f"rendered in this run; job not started (rerun or raise the budget to resume)")
    if max_gpu_seconds is not None and report.gpu_seconds >= max_gpu_seconds:
        return (f"campaign budget reached: max_gpu_seconds={max_gpu_seconds:g} and {report.gpu_seconds:.1f} s "
                f"were spent in this run; job not started (rerun or raise the budget to resume)")
    return ""


def render_missing(
    jobs: Sequence[RenderJob],
    store: Store,
    *,
    batch_size: int = 4,
    device: str | None = None,
    on_done: Callable[[str], None] | None = None,
    batch_invariant: bool | None = None,
    max_images: int | None = None,
    max_gpu_seconds: float | None = None,
    settings: DeviceSettings | None = None,
) -> RenderReport:
    """Render every job whose ``renders/<key>.png`` is missing; report rendered/cached/failed keys.

    ``device``: cpu, cuda[:N] or mps (default: ``$BRANDBATCH_DEVICE``, else the best available).
    ``batch_invariant`` (default ``$BRANDBATCH_BATCH_INVARIANT``, else on): call the pipeline per
    image so pixels never depend on the batch; off batches the denoiser for throughput.
    ``settings`` (from ``render.devices.device_settings``) replaces ``device``/``batch_invariant``
    and carries the other options (compile, VAE tiling/slicing, CPU offload).
    Budget: once ``max_images`` renders were made or ``max_gpu_seconds`` spent in this call, no
    new batch starts; the jobs left fail with reason ``budget`` (a rerun resumes them).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 but is {batch_size}")
    if max_images is not None and max_images < 0:
        raise ValueError(f"max_images must be >= 0 but is {max_images}")
    if max_gpu_seconds is not None and max_gpu_seconds < 0:
        raise ValueError(f"max_gpu_seconds must be >= 0 but is {max_gpu_seconds}")
    done = on_done or (lambda _key: None)
    report = RenderReport()
    unique: dict[str, RenderJob] = {}
    counts: dict[str, int] = {}
    for job in jobs:
        unique.setdefault(job.key, job)
        counts[job.key] = counts.get(job.key, 0) + 1

    def finish(key: str) -> None:
        for _ in range(counts[key]):
            done(key)

    groups: dict[tuple, list[RenderJob]] = {}
    for key, job in unique.items():
        if store.exists(render_key(key)):
            report.cached.append(key)
            finish(key)
        else:
            groups.setdefault(job.group, []).append(job)
    if not groups:
        return report

    def fail(failed_jobs: Sequence[RenderJob], reason: str, message: str) -> None:
        for job in failed_jobs:
            report.failed.append(RenderFailure(job.key, reason, message))
            finish(job.key)

    if settings is not None and (device is not None or batch_invariant is not None):
        raise ValueError("give either settings or device/batch_invariant, not both")
    settings = settings or device_settings(device, batch_invariant=batch_invariant)
    models = list(dict.fromkeys((g[0].model_id, g[0].model_revision) for g in groups.values()))
    # groups of one model run back to back, so each model is loaded once even when many alternate
    for group_jobs in sorted(groups.values(), key=lambda g: models.index((g[0].model_id, g[0].model_revision))):
        if over := _over_budget(report, max_images, max_gpu_seconds):
            fail(group_jobs, "budget", over)
            continue
        first = group_jobs[0]
        try:
            pipe = pipeline_for(first.model_id, first.model_revision, first.model_family, first.scheduler, settings)
        except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its jobs only
            fail(group_jobs, "model_error", str(exc) if isinstance(exc, ModelError) else (
                f"model {first.model_id!r} at revision {first.model_revision!r}: {type(exc).__name__}: {exc}"))
            continue
        queue = list(group_jobs)
        while queue:
            if over := _over_budget(report, max_images, max_gpu_seconds):
                fail(queue, "budget", over)
                break
            room = batch_size if max_images is None else min(batch_size, max_images - len(report.rendered))
            batch, queue = queue[:room], queue[room:]
            results, seconds = render_batch(pipe, batch, settings)
            report.gpu_seconds += seconds
            share = seconds / len(batch)
            for job, result in zip(batch, results):
                failure = result if isinstance(result, RenderFailure) else _keep(store, job, result, settings, share)
                if failure is None:
                    report.rendered.append(job.key)
                    report.job_seconds[job.key] = share
                else:
                    report.failed.append(failure)
                finish(job.key)
    return report
