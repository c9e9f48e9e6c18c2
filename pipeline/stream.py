"""Streaming stages: QA, review queueing and export of each asset row start as soon as the row's
renders are finished, while later renders run.

The render stage (``render_missing`` in this process, or ``render_sharded`` as shard reports
arrive from workers) calls ``CampaignStream.done(key)`` (and ``failed(key)``) as each job
finishes. Once every job of an asset row (all its variants, aspects and expansions) is
finished, the row goes into a bounded queue, and one background thread takes rows from it:

1. QA of the row's renders (``qa.run_qa``). Near-duplicates compare variants of one row and
   family checks an expansion with its master, so a row's results are the ones QA of the whole
   campaign gives (the per-render findings and CLIP embeddings land in the store's caches).
2. Queueing of the row's variants (``ReviewQueue.enqueue``, idempotent), as ``queue_for_review``.

Steps 1 and 2 run in this thread until the renderer starts rendering in this process
(``rendering``), then in the stream's QA process (one per run, forked from the export pool's
fork server): they are Python-heavy, and in this process they would hold the GIL against the
renderer's Python. Rows go there as jobs (renders are read from the store), results come back
in order; torch there has the thread count of this process, and CLIP embeds each image alone,
so the results are the same bits wherever they are computed.
3. For the variants the queue has approved (``qa-auto``, or a designer earlier): export tasks
   (``exports.stage.prepare_exports``) run by one process pool for the whole run, and once
   rendering is over by this process too (``ExportFeed``), so the last rows' exports take
   every core, as in the export stage.
4. The report's thumbnails of the row's renders and of its exported files (``keep_thumbnails``),
   made in the QA process while rendering and kept in the store: the report built after the last
   render only reads them, instead of decoding every exported file then.

Bounds: at most ``depth`` finished rows wait (``done`` blocks the renderer when the queue is
full) and at most ``4 x workers`` export tasks are in flight, so memory stays flat however long
the campaign. The flow's stages then run as before for what is left (rows of designers'
rerolls, variants approved before this run, anything whose approval changed meanwhile) and take
the streamed results and rows (``take_streamed_rows``): QA results, queue, manifests and report
are those of the stages run one after the other. A failure in the background (the store, a
queue whose decision log disagrees) stops the stream; ``finish`` raises it once rendering is over.

With a ``Dispatcher`` (``flows.shard.CheckShards``, when ``$BRANDBATCH_CHECK_DEPLOYMENT`` names a
deployment) finished rows go, a few at a time, to check shards on other workers instead, which
run ``check_rows`` (the same three steps) and report back.

On a machine without a GPU the renderer and the background stages share the same cores: the
overlap is real (processes) but each side runs slower than alone.
"""

from __future__ import annotations

import contextvars
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from exports.assemble import banned_checker, export_items, load_assets
from exports.credentials import load_credential
from exports.placements import Placement
from exports.fingerprint import item_identity
from exports.stage import (ExportItem, ExportTask, export_assets, export_pool, likely_new, only_verified, prepare_exports,
                           refuse_banned_text, run_export_task)
from plan.jobs import RenderJob
from plan.planner import CampaignPlan
from plan.styles import Style
from qa import QAResult, run_qa
from qa.report import keep_thumbnails
from review.actions import by_variant
from review.queue import ApprovedVariant, ReviewQueue
from settings import load_settings
from store import Store
from store.documents import AssetRecord
from store.keys import render_key

T = TypeVar("T")
ItemKey = tuple[str, int]  # (asset_id, variant)
StreamedExports = Mapping[ItemKey, tuple[str, list[dict]]]  # the item's identity and the rows made for it
_STOP = object()


class BoundedWorker(Generic[T]):
    """One background thread that runs ``work`` on the items ``put``, in order: on each item as it
    comes, or on all those waiting at once (a list: per-call costs are paid once while the thread
    is behind); ``put`` blocks while ``depth`` items wait. After ``work`` raised, later items are
    skipped; ``close`` waits for the thread and raises that error."""

    def __init__(self, work: Callable[[list[T]], None], depth: int, name: str) -> None:
        if depth < 1:
            raise ValueError(f"depth (items waiting) must be >= 1 but is {depth}")
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is _STOP:
                stopping = True
                batch.pop()
            if batch and self.error is None:
                try:
                    self._work(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller by close()
                    self.error = exc

    def put(self, item: T) -> None:
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Skip the items still waiting and end the thread (no error raised)."""
        if self._thread.is_alive():
            if self.error is None:
                self.error = RuntimeError("stopped")
            self._queue.put(_STOP)
            self._thread.join()


@dataclass
class Streamed:
    """What the stream did: QA results by job key, the rows whose planned variants it checked
    and queued (row key -> the job keys its QA covered), and the export rows of each item it
    exported, with the identity of the item they were made for (``item_identity``)."""

    results: dict[str, QAResult] = field(default_factory=dict)
    rows: dict[str, list[str]] = field(default_factory=dict)
    exports: dict[ItemKey, tuple[str, list[dict]]] = field(default_factory=dict)

    def merge(self, other: Streamed) -> None:
        self.results.update(other.results)
        self.rows.update(other.rows)
        self.exports.update(other.exports)


@dataclass(frozen=True)
class RowWork:
    """One finished asset row: its planned jobs, those with a render (to check), and whether its
    approved variants are exported now."""

    row: str
    jobs: tuple[RenderJob, ...]
    checked: tuple[RenderJob, ...]
    export: bool

    def to_dict(self) -> dict:
        """JSON parameters of a check shard (jobs as ``RenderJob.to_dict()``, checked ones by key)."""
        return {"row": self.row, "jobs": [job.to_dict() for job in self.jobs],
                "checked": [job.key for job in self.checked], "export": self.export}

    @classmethod
    def from_dict(cls, data: Mapping) -> RowWork:
        jobs = tuple(RenderJob.from_dict(job) for job in data["jobs"])
        checked = set(data["checked"])
        return cls(data["row"], jobs, tuple(job for job in jobs if job.key in checked), bool(data["export"]))


class Dispatcher(Protocol):
    """Runs batches of rows elsewhere (``flows.shard.CheckShards``: flow runs of a check shard
    deployment on the ``cpu`` pool)."""

    def submit(self, rows: Sequence[RowWork]) -> None: ...

    def wait(self) -> list[Streamed]:
        """What every batch submitted did (a batch that failed for good is left out: the flow's
        stages check its rows after rendering)."""
        ...


def check_and_queue(queue: ReviewQueue, store: Store, styles: Mapping[str, Style], works: Sequence[RowWork]
                    ) -> tuple[Streamed, list[ApprovedVariant]]:
    """QA of the rows' rendered jobs (one ``run_qa``: rows never compare with each other), then each
    variant whose renders all have a result queued (as ``queue_for_review``); returns what was
    done and the variants the queue approves in rows to export."""
    checked = [job for work in works for job in work.checked]
    by_key = {result.job_key: result for result in run_qa(checked, store, styles)} if checked else {}
    done = Streamed(results=by_key, rows={work.row: [job.key for job in work.checked] for work in works})
    approved = []
    for work in works:
        for variant_jobs in by_variant(work.jobs).values():
            if all(job.key in by_key for job in variant_jobs):
                item = queue.enqueue(variant_jobs, by_key)
                if item.state == "approved" and work.export:
                    approved.append(ApprovedVariant.of(item))
    return done, approved


_QUEUES: dict[tuple[str, str], ReviewQueue] = {}  # in the stream's QA process: (out, campaign) -> its verified queue


def _torch_threads() -> int | None:
    """torch's CPU thread count in this process (None: torch not imported, the default holds)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _start_qa(clip: bool) -> None:
    """In the stream's QA process, while the first renders run: this module (QA, the queue) is
    imported to run this, and torch and open_clip when a style names a CLIP model."""
    if clip:
        import open_clip  # noqa: F401
        import torch  # noqa: F401


def _check_and_queue_there(out: str, campaign: str, store: Store, styles: Mapping[str, Style],
                           works: Sequence[RowWork], threads: int | None) -> tuple[Streamed, list[ApprovedVariant]]:
    """``check_and_queue`` in the stream's QA process: torch (when CLIP runs) with ``threads`` as
    in the flow's process (CLIP's sums depend on it), the queue opened and verified once."""
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    if (out, campaign) not in _QUEUES:
        queue = ReviewQueue.for_out(out)
        queue.verify(campaign)  # lost decisions stop before queueing
        _QUEUES[out, campaign] = queue
    return check_and_queue(_QUEUES[out, campaign], store, styles, works)


def _close_queues() -> None:
    """In the stream's QA process, at the end: its queues closed."""
    while _QUEUES:
        _QUEUES.popitem()[1].close()


def approved_items(campaign: str, approved: Sequence[ApprovedVariant], assets: Mapping[str, AssetRecord],
                   banned: Callable[[RenderJob], Sequence[str]]) -> list[ExportItem]:
    """The export items of ``approved`` whose texts pass the banned terms (as the export stage)."""
    items, _refused = refuse_banned_text(export_items(campaign, approved, assets), banned)
    return items


def check_rows(store: Store, out: str, campaign: str, rows: Sequence[RowWork], styles: Mapping[str, Style], *,
               placements: Mapping[str, Placement], formats: Sequence[str], styles_dir: Path) -> Streamed:
    """QA, queueing and export of ``rows`` in this process (a check shard on a ``cpu`` worker):
    what ``CampaignStream`` does with a row, for a batch of them; exports use all of this
    machine's export processes."""
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify(campaign)
        done, approved = check_and_queue(queue, store, styles, rows)
    finally:
        queue.close()
    items = approved_items(campaign, approved, load_assets(store, campaign), banned_checker(styles_dir, styles))
    made = export_assets(items, store, placements, formats=formats) if items else []
    for item in items:
        key = (item.asset_id, item.variant)
        done.exports[key] = (item_identity(item), [row for row in made if (row["asset_id"], row["variant"]) == key])
    return done


class ExportFeed:
    """The stream's export tasks: at most ``waiting`` of them wait here (``put`` blocks) until one
    of ``workers`` feeder threads hands it to a free process of one pool, so a task waits here,
    not in the pool, and once rendering is over this process takes waiting tasks too
    (``drain``): the export stage's rule (this process and the workers share one queue). Each
    task's rows go to the list given with it. After a task failed, the others are skipped and
    ``drain`` raises the error. ``run``: what runs a task (picklable); ``made``: called with each
    task's rows once they are made (in the thread that got them)."""

    def __init__(self, workers: int, waiting: int, run: Callable[[ExportTask], list[dict]] = run_export_task,
                 made: Callable[[list[dict]], None] | None = None) -> None:
        self._pool = export_pool(workers)
        self._run = run
        self._made = made or (lambda _rows: None)
        self._waiting: deque[tuple[list[dict], ExportTask]] = deque()
        self._bound = waiting
        self._cond = threading.Condition()
        self._closing = False
        self.error: BaseException | None = None
        self._feeders = [threading.Thread(target=self._feed, name=f"stream-export-{i}", daemon=True)
                         for i in range(workers)]
        for feeder in self._feeders:
            feeder.start()

    def put(self, rows: list[dict], task: ExportTask) -> None:
        with self._cond:
            while len(self._waiting) >= self._bound and self.error is None:
                self._cond.wait()
            if self.error is None:
                self._waiting.append((rows, task))
                self._cond.notify_all()

    def _take(self, *, wait: bool) -> tuple[list[dict], ExportTask] | None:
        with self._cond:
            while wait and not self._waiting and not self._closing and self.error is None:
                self._cond.wait()
            if self.error is not None or not self._waiting:
                return None
            self._cond.notify_all()
            return self._waiting.popleft()

    def _failed(self, exc: BaseException) -> None:
        with self._cond:
            self.error = self.error or exc
            self._cond.notify_all()

    def _feed(self) -> None:
        while (taken := self._take(wait=True)) is not None:
            rows, task = taken
            try:
                rows.extend(made := self._pool.submit(self._run, task).result())
                self._made(made)
            except BaseException as exc:  # noqa: BLE001 - raised by drain
                self._failed(exc)

    def drain(self) -> None:
        """No more tasks come: run the waiting ones here and in the pool; raise what failed."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            while (taken := self._take(wait=False)) is not None:
                rows, task = taken
                rows.extend(made := self._run(task))
                self._made(made)
        except BaseException as exc:
            self._failed(exc)
        for feeder in self._feeders:
            feeder.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Skip the tasks still waiting, wait for those running, release the pool."""
        with self._cond:
            self._closing = True
            self._waiting.clear()
            self._cond.notify_all()
        for feeder in self._feeders:
            feeder.join()
        self._pool.shutdown(wait=True, cancel_futures=True)


class CampaignStream:
    """QA, queue and export each asset row of ``plan`` once all of its jobs among ``render_jobs``
    are finished (rows with none among them, as under ``--retry-failed``, are left to the flow's
    stages). ``export``: export approved variants too (off while a run waits for designers:
    their decisions come later). Rows in ``no_export`` (rows with designers' rerolls, which are
    queued after the run's renders) are checked and queued but not exported. ``queue``: the run's
    review queue, for rows checked in this process (the QA process opens its own). ``workers``: export
    processes (None: ``$BRANDBATCH_EXPORT_WORKERS``, else all cores). ``dispatcher``: run rows
    elsewhere, ``rows_per_shard`` at a time, instead of in this process."""

    def __init__(self, plan: CampaignPlan, render_jobs: Sequence[RenderJob], store: Store, out: str,
                 queue: ReviewQueue, *,
                 placements: Mapping[str, Placement], formats: Sequence[str], styles_dir: Path, export: bool,
                 no_export: Collection[str] = (), workers: int | None = None, depth: int = 8,
                 dispatcher: Dispatcher | None = None, rows_per_shard: int = 8) -> None:
        self.plan, self.store, self.out, self.queue = plan, store, out, queue
        self.placements, self.formats, self.styles_dir = placements, tuple(formats), styles_dir
        self.export, self.no_export = export, set(no_export)
        self.workers = workers or load_settings().export_workers or os.cpu_count() or 1
        self.dispatcher, self.rows_per_shard = dispatcher, rows_per_shard
        self.streamed = Streamed()
        self.styles = plan.styles()
        self._rows: dict[str, list[RenderJob]] = {}
        for job in plan.jobs:
            self._rows.setdefault(job.row_key, []).append(job)
        self._attempted = {job.key for job in render_jobs}
        self._waiting: dict[str, set[str]] = {row: {j.key for j in jobs} & self._attempted
                                              for row, jobs in self._rows.items()}
        self._rows_of: dict[str, list[str]] = {}
        for row, keys in self._waiting.items():
            for key in keys:
                self._rows_of.setdefault(key, []).append(row)
        self._ok: set[str] = set()
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._batch: list[RowWork] = []
        self._verified = False  # the queue, before rows are first queued here
        self._qa = None  # the QA process (a pool of one), once the renderer renders here
        self._clip = any(style.qa.clip_model for style in self.styles.values())
        self._exports: ExportFeed | None = None
        self._thumbnails: deque = deque()  # thumbnail calls in the QA process not known to be done
        self._thumbnails_lock = threading.Lock()  # they come from the stream's thread and the export feeders
        self._parts: dict[ItemKey, list[list[dict]]] = {}  # an item's export rows, a list per task, in order
        self._items: dict[ItemKey, ExportItem] = {}
        self._manifests: dict[str, dict[str, dict]] = {}
        self._credential = None
        self._assets: Mapping[str, AssetRecord] = {}
        self._banned: Callable[[RenderJob], Sequence[str]] = lambda _job: ()
        # the thread sees the flow run's context (Prefect's run context, for subflow runs and logs)
        context = contextvars.copy_context()
        self._worker: BoundedWorker[str] = BoundedWorker(lambda rows: context.run(self._rows_done, rows), depth,
                                                         "campaign-stream")

    # -- called by the renderer (any thread) --
    def failed(self, key: str) -> None:
        with self._lock:
            self._failed.add(key)

    def done(self, key: str) -> None:
        ready = []
        with self._lock:
            if key not in self._failed:
                self._ok.add(key)
            for row in self._rows_of.get(key, ()):
                waiting = self._waiting[row]
                if key in waiting:
                    waiting.discard(key)
                    if not waiting:
                        ready.append(row)
        for row in ready:
            self._worker.put(row)

    def rendering(self) -> None:
        """The renderer starts rendering in this process: later rows are checked and queued in the
        QA process (started now, while the model loads)."""
        if self._qa is None and self.dispatcher is None:
            qa = export_pool(1)
            qa.submit(_start_qa, self._clip)
            self._qa = qa

    # -- the background thread --
    def _rendered(self, job: RenderJob) -> bool:
        """As ``render.deadletters.rendered_jobs``: made or found by this run, or not attempted and stored."""
        if job.key in self._attempted:
            return job.key in self._ok
        return self.store.exists(render_key(job.key))

    def _rows_done(self, rows: list[str]) -> None:
        """QA, queue and export the rows finished so far (one ``run_qa`` for all of them)."""
        works = []
        for row in rows:
            jobs = self._rows[row]
            works.append(RowWork(row, tuple(jobs), tuple(job for job in jobs if self._rendered(job)),
                                 self.export and row not in self.no_export))
        if self.dispatcher is not None:
            self._batch += works
            while len(self._batch) >= self.rows_per_shard:
                self.dispatcher.submit(self._batch[:self.rows_per_shard])
                del self._batch[:self.rows_per_shard]
            return
        if (qa := self._qa) is not None:
            done, approved = qa.submit(_check_and_queue_there, self.out, self.plan.campaign, self.store, self.styles,
                                       works, _torch_threads() if self._clip else None).result()
        else:
            if not self._verified:
                self.queue.verify(self.plan.campaign)  # as queue_for_review: lost decisions stop before queueing
                self._verified = True
            done, approved = check_and_queue(self.queue, self.store, self.styles, works)
        self.streamed.merge(done)
        self._keep_thumbnails([job.key for work in works for job in work.checked], [])
        if approved:
            self._export(approved)

    def _keep_thumbnails(self, job_keys: Sequence[str], rows: list[dict]) -> None:
        """The report's thumbnails of these renders and export rows (one task's: every format of its
        placements), made in the QA process while rendering; without one (nothing renders here, as
        in a cached run, whose thumbnails are kept already) the report makes what is missing."""
        if (qa := self._qa) is None or (not job_keys and not rows):
            return
        with self._thumbnails_lock:
            while self._thumbnails and self._thumbnails[0].done():
                self._thumbnails.popleft().result()  # raises what failed
            self._thumbnails.append(qa.submit(keep_thumbnails, self.store, job_keys, rows))

    def _export(self, approved: Sequence[ApprovedVariant]) -> None:
        if self._credential is None:  # the first export: what every later one needs, read once
            self._credential = load_credential()
            self._assets = load_assets(self.store, self.plan.campaign)
            self._banned = banned_checker(self.styles_dir, self.styles)
        items = approved_items(self.plan.campaign, approved, self._assets, self._banned)
        tasks, rows = prepare_exports(items, self.store, self.placements, formats=self.formats, workers=self.workers,
                                      credential=self._credential, manifests=self._manifests)
        for item in items:
            key = (item.asset_id, item.variant)
            self._items[key] = item
            self._parts[key] = [[row for row in rows if (row["asset_id"], row["variant"]) == key]]
        for task in tasks:
            item = task[0]
            made: list[dict] = []
            self._parts[item.asset_id, item.variant].append(made)
            if self._exports is None and not likely_new(task):  # files already current are only verified,
                made.extend(run_export_task(task))  # here; the workers start at the first task with work to do
                self._keep_thumbnails([], made)
                if not only_verified(made):
                    self._exports = self._feed()
                continue
            if self._exports is None:
                self._exports = self._feed()
            self._exports.put(made, task)

    def _feed(self) -> ExportFeed:
        return ExportFeed(self.workers, 3 * self.workers, made=lambda rows: self._keep_thumbnails([], rows))

    # -- the flow, once rendering is over --
    def finish(self) -> Streamed:
        """Wait for the rows still queued, the export tasks in flight and the shards; raise what failed."""
        try:
            self._worker.close()
            if self._qa is not None:
                self._qa.submit(_close_queues).result()
            if self._exports is not None:
                self._exports.drain()  # rendering is over: this process exports too
            while self._thumbnails:
                self._thumbnails.popleft().result()
            self.streamed.exports = {key: (item_identity(item), [row for part in self._parts[key] for row in part])
                                     for key, item in self._items.items()}
            if self.dispatcher is not None:
                if self._batch:
                    self.dispatcher.submit(self._batch)
                    self._batch = []
                for part in self.dispatcher.wait():
                    self.streamed.merge(part)
            return self.streamed
        finally:
            self.close()

    def close(self) -> None:
        """Stop (also after a failure of the render stage): the pools are released."""
        self._worker.stop()
        if self._exports is not None:
            self._exports.close()
        if self._qa is not None:
            self._qa.shutdown(wait=True, cancel_futures=True)
        self._qa = self._exports = None


def settled_rows(qa_jobs: Sequence[RenderJob], streamed: Streamed) -> set[str]:
    """The asset rows whose streamed QA and queueing stand: the stream checked exactly the jobs
    of the row that the run's QA checks (``qa_jobs``, from the final render report; a render
    retried after a store failure can make them differ, and then the row is checked again)."""
    by_row: dict[str, list[str]] = {}
    for job in qa_jobs:
        by_row.setdefault(job.row_key, []).append(job.key)
    return {row for row, keys in streamed.rows.items() if keys == by_row.get(row, [])}


def take_streamed_rows(items: Sequence[ExportItem], streamed: StreamedExports
                       ) -> tuple[list[ExportItem], list[dict], list[str]]:
    """(the items still to export, the rows streamed for the others, the files the stream wrote
    for items that are not exported as it did: to delete). A streamed item counts only when the
    item to export now has the same identity (renders, approval, copy, placements)."""
    todo, rows = [], []
    taken: set[ItemKey] = set()
    for item in items:
        key = (item.asset_id, item.variant)
        if key in streamed and streamed[key][0] == item_identity(item):
            rows.extend(streamed[key][1])
            taken.add(key)
        else:
            todo.append(item)
    stale = [row["path"] for key, (_identity, made) in streamed.items() if key not in taken for row in made
             if row.get("status") == "exported" and row.get("rewritten")]
    return todo, rows, stale
