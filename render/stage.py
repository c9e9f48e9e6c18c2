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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


def _store_render(store: Store, job: RenderJob, pixels, settings: DeviceSettings, seconds: float) -> None:
    """Sidecar first, then the PNG: a PNG in the store always has its sidecar."""
    sidecar = {**job.to_dict(), **asdict(settings), "job_key": job.key, "seconds": round(seconds, 4)}
    store.put(sidecar_key(job.key), json.dumps(sidecar, sort_keys=True, indent=1).encode("utf-8"),
              content_type="application/json", overwrite=True)
    store.put(render_key(job.key), encode_png(pixels), content_type="image/png")


class _Run:
    """The bookkeeping of one ``render_missing`` call: report, ``on_done`` calls, budget, and the
    store writes, which run in one background thread so PNG encoding and I/O overlap rendering."""

    def __init__(self, jobs: Sequence[RenderJob], on_done: Callable[[str], None] | None,
                 max_images: int | None, max_gpu_seconds: float | None) -> None:
        self.report = RenderReport()
        self.unique: dict[str, RenderJob] = {}
        self.counts: dict[str, int] = {}
        for job in jobs:
            key = job.key
            self.unique.setdefault(key, job)
            self.counts[key] = self.counts.get(key, 0) + 1
        self.on_done = on_done or (lambda _key: None)
        self.max_images, self.max_gpu_seconds = max_images, max_gpu_seconds
        self.pending: deque[tuple[str, float, Future]] = deque()

    def _finish(self, key: str) -> None:
        for _ in range(self.counts[key]):
            self.on_done(key)

    def cached(self, key: str) -> None:
        self.report.cached.append(key)
        self._finish(key)

    def fail(self, failure: RenderFailure) -> None:
        self.report.failed.append(failure)
        self._finish(failure.job_key)

    def fail_all(self, jobs: Sequence[RenderJob], reason: str, message: str) -> None:
        for job in jobs:
            self.fail(RenderFailure(job.key, reason, message))

    def store_later(self, writer: ThreadPoolExecutor, store: Store, job: RenderJob, pixels,
                    settings: DeviceSettings, seconds: float) -> None:
        self.pending.append((job.key, seconds, writer.submit(_store_render, store, job, pixels, settings, seconds)))

    def settle(self, *, wait: bool) -> None:
        """Record the finished writes, in order (all of them when ``wait``)."""
        while self.pending and (wait or self.pending[0][2].done()):
            key, seconds, future = self.pending.popleft()
            if (exc := future.exception()) is not None:
                self.fail(RenderFailure(key, "error", f"storing the render failed: {type(exc).__name__}: {exc}"))
            else:
                self.report.rendered.append(key)
                self.report.job_seconds[key] = seconds
                self._finish(key)

    @property
    def images(self) -> int:
        """Images rendered in this call, those still being written included."""
        return len(self.report.rendered) + len(self.pending)

    def over_budget(self) -> str:
        """Why no new batch may start ('' when within budget)."""
        if self.max_images is not None and self.images >= self.max_images:
            return (f"campaign budget reached: max_images={self.max_images} and {self.images} images were "
                    f"rendered in this run; job not started (rerun or raise the budget to resume)")
        if self.max_gpu_seconds is not None and self.report.gpu_seconds >= self.max_gpu_seconds:
            return (f"campaign budget reached: max_gpu_seconds={self.max_gpu_seconds:g} and "
                    f"{self.report.gpu_seconds:.1f} s were spent in this run; job not started "
                    f"(rerun or raise the budget to resume)")
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
    ``on_done(key)`` is called once per job given (duplicates included) when it is finished.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 but is {batch_size}")
    if max_images is not None and max_images < 0:
        raise ValueError(f"max_images must be >= 0 but is {max_images}")
    if max_gpu_seconds is not None and max_gpu_seconds < 0:
        raise ValueError(f"max_gpu_seconds must be >= 0 but is {max_gpu_seconds}")
    if settings is not None and (device is not None or batch_invariant is not None):
        raise ValueError("give either settings or device/batch_invariant, not both")
    run = _Run(jobs, on_done, max_images, max_gpu_seconds)
    groups: dict[tuple, list[RenderJob]] = {}
    for key, job in run.unique.items():
        if store.exists(render_key(key)):
            run.cached(key)
        else:
            groups.setdefault(job.group, []).append(job)
    if not groups:
        return run.report

    settings = settings or device_settings(device, batch_invariant=batch_invariant)
    models = list(dict.fromkeys((g[0].model_id, g[0].model_revision) for g in groups.values()))
    # groups of one model run back to back, so each model is loaded once even when many alternate
    ordered = sorted(groups.values(), key=lambda g: models.index((g[0].model_id, g[0].model_revision)))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-store") as writer:
        for group_jobs in ordered:
            if over := run.over_budget():
                run.fail_all(group_jobs, "budget", over)
                continue
            first = group_jobs[0]
            try:
                pipe = pipeline_for(first.model_id, first.model_revision, first.model_family, first.scheduler,
                                    settings)
            except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its jobs only
                run.fail_all(group_jobs, "model_error", str(exc) if isinstance(exc, ModelError) else (
                    f"model {first.model_id!r} at revision {first.model_revision!r}: {type(exc).__name__}: {exc}"))
                continue
            queue = list(group_jobs)
            while queue:
                if over := run.over_budget():
                    run.fail_all(queue, "budget", over)
                    break
                room = batch_size if max_images is None else min(batch_size, max_images - run.images)
                batch, queue = queue[:room], queue[room:]
                results, seconds = render_batch(pipe, batch, settings)
                run.report.gpu_seconds += seconds
                for job, result in zip(batch, results):
                    if isinstance(result, RenderFailure):
                        run.fail(result)
                        continue
                    pixels, failure = check_pixels(job.key, result)
                    if failure is not None:
                        run.fail(failure)
                    else:
                        run.store_later(writer, store, job, pixels, settings, seconds / len(batch))
                run.settle(wait=False)
        run.settle(wait=True)
    return run.report
