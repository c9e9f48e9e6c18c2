"""The render stage: render the jobs whose PNG is not in the store yet, in batches.

Jobs are grouped by ``RenderJob.group`` (same model, size, scheduler, steps, guidance) and
run in batches; each image has its own ``torch.Generator`` seeded with ``job.seed``. By
default (batch-invariant mode) the pipeline is called once per image inside a batch, because
CPU/GPU kernels round differently for different batch shapes: pixels then never depend on
batch size, order or neighbours. Groups of one model render side by side, taking turns image
by image (batch by batch when batches are real pipeline calls), so the renders of a sheet row
(one per resolution bucket) finish together and early, and its QA and export can start while
later rows render (``pipeline.stream``); a budget, checked as each batch starts, then stops
whole rows rather than whole buckets. One bad job or batch never stops the rest; a store that
fails (unreachable after its retries, disk full) stops the run with ``StoreError``.

A job counts as done only when its stored PNG is whole and its sidecar names it: a truncated,
zero-filled or foreign file (a crash of another tool, a bad copy) is deleted and rendered
again. Concurrent runs of the same jobs each render, but every PNG is written once: the store's
create-if-absent put decides, and the loser counts the job as cached.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from plan.jobs import RenderJob
from render.devices import DeviceSettings, device_settings
from render.registry import ModelError, inpaint_pipeline_for, pipeline_for
from render.expand import paste_master
from render.reference import Reference, edge_map, fit_reference, load_reference
from store.base import Store, StoreError
from store.documents import DocumentError, RenderSidecar, parse_document, write_document
from store.keys import render_key, sidecar_key

BLACK_MAX = 2  # an image whose brightest channel value is at most this (of 255) is black
CHECK_THREADS = 8  # stored renders checked at once at the start of a run (I/O bound, S3 round trips)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class RenderFailure:
    """A job that produced no render. ``reason``: model_error, nan_output, black_output, oom,
    budget, prompt_too_long (a text encoder would cut a text), master_missing (an expansion whose
    master is not stored), input_missing (a packshot or reference job whose image is not stored) or error."""

    job_key: str
    reason: str
    message: str


@dataclass
class RenderReport:
    rendered: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[RenderFailure] = field(default_factory=list)
    gpu_seconds: float = 0.0  # device seconds spent in pipeline calls (CPU seconds on CPU)
    job_seconds: dict[str, float] = field(default_factory=dict)  # job key -> its share of its pipeline call's seconds
    damaged: dict[str, str] = field(default_factory=dict)  # job key -> why its stored render was not used


def png_problem(data: bytes, width: int, height: int) -> str:
    """Why ``data`` is not a whole PNG of ``width`` x ``height`` ('' when it is). Checks the
    signature, every chunk's length and CRC, the IHDR size and that IEND ends the file, without
    decompressing: a truncated, zero-filled or bit-flipped file fails."""
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG (no PNG signature)"
    view, pos, end = memoryview(data), len(_PNG_SIGNATURE), len(data)
    while pos + 12 <= end:
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        stop = pos + 12 + length
        if stop > end:
            return f"truncated: chunk {kind.decode('latin-1')!r} at byte {pos} needs {stop} bytes, the file has {end}"
        if zlib.crc32(view[pos + 4:stop - 4]) != int.from_bytes(view[stop - 4:stop], "big"):
            return f"corrupt: bad CRC in chunk {kind.decode('latin-1')!r} at byte {pos}"
        if pos == len(_PNG_SIGNATURE):
            if kind != b"IHDR" or length < 8:
                return "corrupt: the first chunk is not IHDR"
            size = struct.unpack(">II", view[pos + 8:pos + 16])
            if size != (width, height):
                return f"is {size[0]}x{size[1]} but the job is {width}x{height}"
        if kind == b"IEND":
            return "" if stop == end else f"corrupt: {end - stop} bytes after the IEND chunk"
        pos = stop
    return f"truncated: no IEND chunk in {end} bytes"


def stored_render_problem(store: Store, job: RenderJob) -> str:
    """'' when the job's render is in the store, whole, and its sidecar names the job; else why
    not ("missing" when there is no PNG). Reads the PNG and the sidecar (no decoding)."""
    key = job.key
    try:
        png = store.get(render_key(key))
    except FileNotFoundError:
        return "missing"
    if problem := png_problem(png, job.width, job.height):
        return f"{render_key(key)} {problem}"
    try:
        sidecar = parse_document(store.get(sidecar_key(key)), RenderSidecar, sidecar_key(key))
    except FileNotFoundError:
        return f"{sidecar_key(key)} is missing"
    except DocumentError as exc:  # torn JSON, not UTF-8, not a sidecar
        return str(exc)
    if sidecar.job_key != key:
        return f"{sidecar_key(key)} does not name job {key}"
    if sidecar.sha256 is not None and sidecar.sha256 != hashlib.sha256(png).hexdigest():
        return f"{render_key(key)} does not match the sha256 its sidecar recorded"
    return ""


def verified_render(store: Store, job_key: str) -> bytes:
    """The stored render of ``job_key``, checked against the sha256 its sidecar recorded before
    anything reuses it. ``FileNotFoundError`` when it is not there; ``ValueError`` naming the
    file when it does not match (a rerun renders it again)."""
    png = store.get(render_key(job_key))
    try:
        recorded = parse_document(store.get(sidecar_key(job_key)), RenderSidecar, sidecar_key(job_key)).sha256
    except (FileNotFoundError, DocumentError):
        recorded = None  # no sidecar or no hash recorded (renders of earlier versions): the PNG checks decide
    if recorded is not None and recorded != hashlib.sha256(png).hexdigest():
        raise ValueError(f"render {render_key(job_key)} does not match the sha256 its sidecar recorded "
                         "(damaged or replaced; the next run renders it again)")
    return png


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


def text_limit_problem(pipe, job: RenderJob) -> str:
    """Why a text encoder of ``pipe`` would cut the job's prompt or negative prompt ('' if none).

    Every tokenizer of the pipeline counts each text it would read, without truncation, against
    its encoder's limit: a CLIP tokenizer's ``model_max_length`` (77), a T5 tokenizer's the
    pipeline's ``max_sequence_length`` default (256 for SD3, 512 for FLUX). Diffusers would
    truncate silently (a log warning); the job fails instead."""
    import inspect

    texts = {"prompt": job.prompt}
    if job.model_family != "flux" and job.negative_prompt:  # FLUX reads no negative prompt
        texts["negative prompt"] = job.negative_prompt
    sequence = inspect.signature(pipe.__call__).parameters.get("max_sequence_length")
    for attr in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        tokenizer = getattr(pipe, attr, None)
        if tokenizer is None:
            continue
        t5 = "T5" in type(tokenizer).__name__
        limit = sequence.default if t5 and sequence is not None else tokenizer.model_max_length
        for what, text in texts.items():
            count = len(tokenizer(text, truncation=False, verbose=False)["input_ids"])
            if count > limit:
                return (f"{what} is {count} tokens for the {'T5' if t5 else 'CLIP'} text encoder ({attr}), which "
                        f"reads at most {limit}; it would be cut, so nothing is rendered (shorten the text)")
    return ""


@dataclass(frozen=True)
class Expansion:
    """What an expansion job's pipeline call needs besides the job: its master on the canvas,
    the inpainting mask, where the master sits, and the master's pixels for the paste-back."""

    canvas: object  # PIL RGB image, job.width x job.height
    mask: object  # PIL L image, 255 = paint
    box: tuple[int, int, int, int]
    master: object  # uint8 HxWx3

    def finish(self, pixels):
        """The decoded expansion with the master's pixels put back exactly."""
        return paste_master(pixels, self.master, self.box)


@dataclass(frozen=True)
class Packshot:
    """What a packshot job's pipeline call needs: the product on the canvas, the mask of
    everything around it, and the placed product (``render.product``) for the composite."""

    canvas: object  # PIL RGB image, job.width x job.height
    mask: object  # PIL L image, 255 = paint
    layer: object  # PIL RGBA image: the placed product
    box: tuple[int, int, int, int]
    shadow: bool

    def finish(self, pixels):
        """The decoded render with the contact shadow and the product's pixels composited back."""
        from render.product import composite_product

        return composite_product(pixels, self.layer, self.box, self.shadow)


Inputs = Expansion | Packshot | Reference  # what a job's pipeline call takes besides the job


def load_packshot_inputs(store: Store, job: RenderJob) -> Packshot:
    """Raises ``LookupError`` when the packshot is not in the store."""
    from render.product import inpaint_inputs, load_packshot, product_layer

    try:
        product = load_packshot(store, job)
    except FileNotFoundError:
        raise LookupError(f"the packshot of {job.row_key} ({job.input_sha256}) is not in the store; planning "
                          "writes it (run the campaign again)") from None
    layer, box = product_layer(product, job)
    canvas, mask = inpaint_inputs(layer, box)
    return Packshot(canvas, mask, layer, box, bool(job.product[3]))


def load_expansion(store: Store, job: RenderJob) -> Expansion:
    """Raises ``LookupError`` when the master's render is not in the store."""
    import numpy as np
    from PIL import Image

    from render.expand import expansion_inputs

    try:
        data = store.get(render_key(job.master_key))
    except FileNotFoundError:
        raise LookupError(f"master render {render_key(job.master_key)} is not in the store (it failed or was not "
                          f"planned); the {job.aspect} expansion renders once its master does") from None
    with Image.open(io.BytesIO(data)) as opened:
        master = opened.convert("RGB")
    canvas, mask, box = expansion_inputs(master, job)
    return Expansion(canvas, mask, box, np.asarray(master))


def call_pipeline(pipe, jobs: Sequence[RenderJob], settings: DeviceSettings, inputs: dict[str, Inputs] | None = None):
    """Float images (N, H, W, 3) in [0, 1] for jobs of one group, in job order: one pipeline call.
    Expansion and packshot jobs call the inpainting pipeline with their canvas and mask, reference
    jobs the image-to-image pipeline from their reference and/or the IP-Adapter with it (``inputs``)."""
    import inspect

    import torch

    first = jobs[0]
    kwargs = dict(height=first.height, width=first.width, num_inference_steps=first.steps,
                  guidance_scale=first.guidance, output_type="np")
    if first.model_family != "flux":  # FLUX is guidance-distilled: no negative prompt
        kwargs["negative_prompt"] = [j.negative_prompt for j in jobs]
    if first.needs_inpaint:
        kwargs["image"] = [inputs[j.key].canvas for j in jobs]
        kwargs["mask_image"] = [inputs[j.key].mask for j in jobs]
        if "strength" in inspect.signature(pipe.__call__).parameters:
            kwargs["strength"] = 1.0  # the new area starts from pure noise
    if first.reference_strength is not None:  # image-to-image: the size is the start image's
        del kwargs["height"], kwargs["width"]
        kwargs["image"] = [fit_reference(inputs[j.key].image, j.width, j.height) for j in jobs]
        kwargs["strength"] = first.reference_strength
    if first.ip_adapter is not None:
        kwargs["ip_adapter_image"] = inputs[first.key].image  # one reference per group (RenderJob.group)
    if first.controlnet is not None:  # structure: the reference's edges (image-to-image: its control image)
        edges = [edge_map(inputs[j.key].image, j.width, j.height) for j in jobs]
        kwargs["control_image" if first.reference_strength is not None else "image"] = edges
        kwargs["controlnet_conditioning_scale"] = first.controlnet[2]
    with torch.inference_mode():
        return pipe(prompt=[j.prompt for j in jobs], generator=generators(jobs, settings), **kwargs).images


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)


def render_batch(pipe, jobs: Sequence[RenderJob], settings: DeviceSettings,
                 inputs: dict[str, Inputs] | None = None) -> tuple[list, float]:
    """([float image or RenderFailure per job], seconds).

    Batch-invariant mode: one pipeline call per image. Otherwise one call for the batch; out of
    device memory, it is retried at half the size down to single images; on any other error
    each job is retried alone, so one bad job fails only itself."""
    if len(jobs) > 1 and settings.batch_invariant:
        parts = [render_batch(pipe, [job], settings, inputs) for job in jobs]
        return [r for results, _ in parts for r in results], sum(seconds for _, seconds in parts)
    start = time.perf_counter()
    try:
        images = list(call_pipeline(pipe, jobs, settings, inputs))
        return images, time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the run
        seconds = time.perf_counter() - start
        oom = is_oom(exc)
        if oom:
            _free_device_memory(settings)
        if len(jobs) > 1:
            half = (len(jobs) + 1) // 2 if oom else 1
            parts = [render_batch(pipe, jobs[i:i + half], settings, inputs) for i in range(0, len(jobs), half)]
            return [r for results, _ in parts for r in results], seconds + sum(s for _, s in parts)
        if oom:
            return [RenderFailure(jobs[0].key, "oom", f"out of device memory on {settings.device} even for a "
                                  f"single {jobs[0].width}x{jobs[0].height} image: {exc}")], seconds
        return [RenderFailure(jobs[0].key, "error", f"{type(exc).__name__}: {exc}")], seconds


def _free_device_memory(settings: DeviceSettings) -> None:
    import torch

    if settings.kind == "cuda":
        torch.cuda.empty_cache()


def _store_render(store: Store, job: RenderJob, pixels, settings: DeviceSettings, seconds: float) -> bool:
    """Sidecar first, then the PNG: a PNG in the store always has its sidecar. False when
    another run stored the PNG first (it is kept: the same job renders the same pixels)."""
    png = encode_png(pixels)
    sidecar = RenderSidecar(**job.to_dict(), **asdict(settings), job_key=job.key, seconds=round(seconds, 4),
                            sha256=hashlib.sha256(png).hexdigest())  # what reuse checks the PNG against
    write_document(store, sidecar_key(job.key), sidecar)
    if store.put(render_key(job.key), png, content_type="image/png"):
        return True
    kept = hashlib.sha256(store.get(render_key(job.key))).hexdigest()
    if kept != sidecar.sha256:  # the other run's PNG (another device's pixels) stays: record its hash
        write_document(store, sidecar_key(job.key), sidecar.model_copy(update={"sha256": kept}))
    return False


class _Run:
    """The bookkeeping of one ``render_missing`` call: report, ``on_done`` calls, budget, and the
    store writes, which run in one background thread so PNG encoding and I/O overlap rendering."""

    def __init__(self, jobs: Sequence[RenderJob], on_done: Callable[[str], None] | None,
                 max_images: int | None, max_gpu_seconds: float | None,
                 on_failed: Callable[[str], None] | None = None) -> None:
        self.report = RenderReport()
        self.unique: dict[str, RenderJob] = {}
        self.counts: dict[str, int] = {}
        for job in jobs:
            key = job.key
            self.unique.setdefault(key, job)
            self.counts[key] = self.counts.get(key, 0) + 1
        self.on_done = on_done or (lambda _key: None)
        self.on_failed = on_failed or (lambda _key: None)
        self.max_images, self.max_gpu_seconds = max_images, max_gpu_seconds
        self.pending: deque[tuple[str, float, Future]] = deque()
        self.store_error: StoreError | None = None  # the first failed store write; no new batch starts

    def _finish(self, key: str) -> None:
        for _ in range(self.counts[key]):
            self.on_done(key)

    def cached(self, key: str) -> None:
        self.report.cached.append(key)
        self._finish(key)

    def fail(self, failure: RenderFailure) -> None:
        self.report.failed.append(failure)
        self.on_failed(failure.job_key)
        self._finish(failure.job_key)

    def fail_all(self, jobs: Sequence[RenderJob], reason: str, message: str) -> None:
        for job in jobs:
            self.fail(RenderFailure(job.key, reason, message))

    def store_later(self, writer: ThreadPoolExecutor, store: Store, job: RenderJob, pixels,
                    settings: DeviceSettings, seconds: float) -> None:
        self.pending.append((job.key, seconds, writer.submit(self._write, store, job, pixels, settings, seconds)))

    def _write(self, store: Store, job: RenderJob, pixels, settings: DeviceSettings, seconds: float) -> bool | None:
        """In the writer thread: store one render; None (nothing tried) once the store has failed."""
        if self.store_error is not None:
            return None
        try:
            return _store_render(store, job, pixels, settings, seconds)
        except StoreError as exc:
            self.store_error = exc
            raise

    def settle(self, *, wait: bool) -> None:
        """Record the finished writes, in order (all of them when ``wait``). A write lost to a
        failed store is left for the caller (``store_error``); the job is not finished."""
        while self.pending and (wait or self.pending[0][2].done()):
            key, seconds, future = self.pending.popleft()
            if (exc := future.exception()) is not None:
                if not isinstance(exc, StoreError):
                    self.fail(RenderFailure(key, "error", f"storing the render failed: {type(exc).__name__}: {exc}"))
            elif future.result() is False:
                self.cached(key)  # another run stored this job's PNG first
            elif future.result():
                self.report.rendered.append(key)
                self.report.job_seconds[key] = seconds
                self._finish(key)

    @property
    def images(self) -> int:
        """Images rendered in this call, those still being written included."""
        return len(self.report.rendered) + len(self.pending)

    def over_budget(self, started: int = 0) -> str:
        """Why no new batch may start ('' when within budget); ``started``: images of batches
        already started and not rendered yet."""
        if self.max_images is not None and self.images + started >= self.max_images:
            return (f"campaign budget reached: max_images={self.max_images} and {self.images} images were "
                    f"rendered in this run; job not started (rerun or raise the budget to resume)")
        if self.max_gpu_seconds is not None and self.report.gpu_seconds >= self.max_gpu_seconds:
            return (f"campaign budget reached: max_gpu_seconds={self.max_gpu_seconds:g} and "
                    f"{self.report.gpu_seconds:.1f} s were spent in this run; job not started "
                    f"(rerun or raise the budget to resume)")
        return ""


def _with_inputs(jobs: list[RenderJob], store: Store, inputs: dict[str, Inputs], run: _Run) -> list[RenderJob]:
    """The jobs whose inputs are stored (put in ``inputs``): an expansion's master, a packshot
    job's product, a reference job's reference; the others fail with reason ``master_missing``
    (``input_missing``), or ``error`` when the input cannot be used."""
    ready = []
    for job in jobs:
        try:
            inputs[job.key] = (load_expansion(store, job) if job.is_expansion else load_reference(store, job)
                               if job.uses_reference else load_packshot_inputs(store, job))
        except LookupError as exc:
            run.fail(RenderFailure(job.key, "master_missing" if job.is_expansion else "input_missing", str(exc)))
            continue
        except (StoreError, OSError, ValueError) as exc:
            if isinstance(exc, StoreError):
                run.store_error = exc
                break
            what = (f"master {job.master_key}" if job.is_expansion else "reference_image "
                    f"{job.input_sha256['reference_image']}" if job.uses_reference else f"packshot {job.input_sha256}")
            run.fail(RenderFailure(job.key, "error", f"{what} cannot be used: {type(exc).__name__}: {exc}"))
            continue
        ready.append(job)
    return ready


def _pipeline(job: RenderJob, settings: DeviceSettings):
    """The pipeline view for ``job``'s group: inpainting for expansions and packshot renders,
    image-to-image for reference jobs with a ``reference_strength``, ControlNet for structure."""
    if job.needs_inpaint:
        return inpaint_pipeline_for(job.model_id, job.model_revision, job.model_family, job.scheduler, settings,
                                    adapters=job.adapters or (), embeddings=job.embeddings or ())
    return pipeline_for(job.model_id, job.model_revision, job.model_family, job.scheduler, settings,
                        adapters=job.adapters or (), embeddings=job.embeddings or (), ip_adapter=job.ip_adapter,
                        image_to_image=job.reference_strength is not None,
                        controlnet=job.controlnet[:2] if job.controlnet else None)


@dataclass
class _Lane:
    """One group of a segment: its pipeline, the jobs not started yet, the jobs of the batch it
    is rendering (started: within the budget), and their inputs."""

    pipe: object
    queue: list[RenderJob]
    inputs: dict[str, Inputs]
    batch: list[RenderJob] = field(default_factory=list)


def _render_lanes(lanes: Sequence[_Lane], run: _Run, writer: ThreadPoolExecutor, store: Store,
                  settings: DeviceSettings, batch_size: int) -> None:
    """Render the lanes side by side. Each lane starts a batch of up to ``batch_size`` of its jobs
    when it has none (the budget is checked there: batches already started count against
    ``max_images``); in batch-invariant mode the lanes then take turns image by image (a row's
    renders in every lane finish together, one row after the other), otherwise batch by batch (one
    pipeline call each, so device batches keep their size)."""
    step = 1 if settings.batch_invariant else batch_size
    while run.store_error is None and any(lane.queue or lane.batch for lane in lanes):
        for lane in lanes:
            if run.store_error is not None:
                break
            if not lane.batch:
                if not lane.queue:
                    continue
                started = sum(len(other.batch) for other in lanes)
                if over := run.over_budget(started):
                    run.fail_all(lane.queue, "budget", over)
                    lane.queue.clear()
                    continue
                room = batch_size if run.max_images is None else min(batch_size, run.max_images - run.images - started)
                lane.batch = lane.queue[:room]
                del lane.queue[:room]
            part = lane.batch[:step]
            del lane.batch[:step]
            results, seconds = render_batch(lane.pipe, part, settings, lane.inputs)
            run.report.gpu_seconds += seconds
            for job, result in zip(part, results):
                if isinstance(result, RenderFailure):
                    run.fail(result)
                    continue
                pixels, failure = check_pixels(job.key, result)
                if failure is not None:
                    run.fail(failure)
                else:
                    if job.needs_inpaint:
                        pixels = lane.inputs[job.key].finish(pixels)
                    run.store_later(writer, store, job, pixels, settings, seconds / len(part))
            run.settle(wait=False)


def render_missing(
    jobs: Sequence[RenderJob],
    store: Store,
    *,
    batch_size: int = 4,
    device: str | None = None,
    on_done: Callable[[str], None] | None = None,
    on_failed: Callable[[str], None] | None = None,
    on_start: Callable[[], None] | None = None,
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
    ``on_done(key)`` is called once per job given (duplicates included) when it is finished;
    ``on_failed(key)`` once per failed job, just before its ``on_done``; ``on_start()`` once,
    before the first model loads, when there is something to render.
    A stored render that is not whole (see ``stored_render_problem``) is deleted, rendered again
    and listed in ``damaged``. Raises ``StoreError`` when the store fails: no new batch starts,
    the renders already made are stored first, and a rerun resumes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 but is {batch_size}")
    if max_images is not None and max_images < 0:
        raise ValueError(f"max_images must be >= 0 but is {max_images}")
    if max_gpu_seconds is not None and max_gpu_seconds < 0:
        raise ValueError(f"max_gpu_seconds must be >= 0 but is {max_gpu_seconds}")
    if settings is not None and (device is not None or batch_invariant is not None):
        raise ValueError("give either settings or device/batch_invariant, not both")
    run = _Run(jobs, on_done, max_images, max_gpu_seconds, on_failed)
    groups: dict[tuple, list[RenderJob]] = {}
    with ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="render-check") as checks:
        problems = list(checks.map(lambda job: stored_render_problem(store, job), run.unique.values()))
    for (key, job), problem in zip(run.unique.items(), problems):
        if not problem:
            run.cached(key)
            continue
        if problem != "missing":
            run.report.damaged[key] = problem
            store.delete(render_key(key))  # so the new render is written as new (once, with its sidecar)
        groups.setdefault(job.group, []).append(job)
    if not groups:
        return run.report
    if on_start is not None:
        on_start()

    settings = settings or device_settings(device, batch_invariant=batch_invariant)
    builds = list(dict.fromkeys(g[0].build for g in groups.values()))
    # masters (and independent renders) before expansions, which outpaint stored masters; groups
    # of one build (model + adapters) run back to back, so each is built once even when many alternate
    ordered = sorted(groups.values(), key=lambda g: (g[0].is_expansion, builds.index(g[0].build)))
    # groups of one build and kind render side by side (_render_lanes): a sheet row's renders (one
    # per resolution bucket) finish together and early, so its QA and export can start
    # (pipeline.stream); every batch holds the same jobs as group by group
    segments: list[list[list[RenderJob]]] = []
    for group_jobs in ordered:
        kind = (group_jobs[0].is_expansion, group_jobs[0].build)
        if segments and (segments[-1][0][0].is_expansion, segments[-1][0][0].build) == kind:
            segments[-1].append(group_jobs)
        else:
            segments.append([group_jobs])
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-store") as writer:
        for segment in segments:
            if run.store_error is not None:
                break
            lanes: list[_Lane] = []
            for group_jobs in segment:
                if run.store_error is not None:
                    break
                if over := run.over_budget():
                    run.fail_all(group_jobs, "budget", over)
                    continue
                first = group_jobs[0]
                inputs: dict[str, Inputs] = {}
                if first.needs_inpaint or first.uses_reference:
                    run.settle(wait=True)  # every master rendered so far is in the store
                    group_jobs = _with_inputs(group_jobs, store, inputs, run)
                    if not group_jobs or run.store_error is not None:
                        continue
                try:
                    pipe = _pipeline(first, settings)
                except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its jobs only
                    run.fail_all(group_jobs, "model_error", str(exc) if isinstance(exc, ModelError) else (
                        f"model {first.model_id!r} at revision {first.model_revision!r}: {type(exc).__name__}: {exc}"))
                    continue
                queue = []
                for job in group_jobs:
                    if too_long := text_limit_problem(pipe, job):
                        run.fail(RenderFailure(job.key, "prompt_too_long", too_long))
                    else:
                        queue.append(job)
                lanes.append(_Lane(pipe, queue, inputs))
            _render_lanes(lanes, run, writer, store, settings, batch_size)
        run.settle(wait=True)
    if run.store_error is not None:
        done = len(run.report.rendered) + len(run.report.cached)
        raise StoreError(f"{run.store_error}; rendering stopped with {done} of {len(run.unique)} renders in the "
                         f"store (rerun to resume once the store works)") from run.store_error
    return run.report
