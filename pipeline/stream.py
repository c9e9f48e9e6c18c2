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
3. For the variants the queue has approved (``qa-auto``, or a designer earlier): export tasks
   (``exports.stage.prepare_exports``) submitted to one process pool for the whole run.

Bounds: at most ``depth`` finished rows wait (``done`` blocks the renderer when the queue is
full) and at most ``4 x workers`` export tasks are in flight, so memory stays flat however long
the campaign. The flow's stages then run as before for what is left (rows of designers'
rerolls, variants approved before this run, anything whose approval changed meanwhile) and take
the streamed results and rows (``take_streamed_rows``): QA results, queue, manifests and report
are those of the stages run one after the other. A failure in the background (the store, a
queue whose decision log disagrees) stops the stream; ``finish`` raises it once rendering is over.

On a machine without a GPU the renderer and the background stages share the same cores: the
overlap is real (threads and processes) but each side runs slower than alone.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from exports.assemble import banned_checker, export_items, load_assets
from exports.credentials import load_credential
from exports.placements import Placement
from exports.stage import ExportItem, export_pool, prepare_exports, refuse_banned_text, run_export_task
from plan.jobs import RenderJob
from plan.planner import CampaignPlan
from qa import QAResult, run_qa
from review.actions import by_variant
from review.queue import ApprovedVariant, ReviewQueue
from store import Store
from store.keys import render_key

T = TypeVar("T")
ItemKey = tuple[str, int]  # (asset_id, variant)
StreamedExports = Mapping[ItemKey, tuple[ExportItem, list[dict]]]  # the item and the rows made for it
_STOP = object()


class BoundedWorker(Generic[T]):
    """One background thread that runs ``work`` on each item ``put`` in order; ``put`` blocks while
    ``depth`` items wait. After ``work`` raised, later items are skipped; ``close`` waits for the
    thread and raises that error."""

    def __init__(self, work: Callable[[T], None], depth: int, name: str) -> None:
        if depth < 1:
            raise ValueError(f"depth (items waiting) must be >= 1 but is {depth}")
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self.error is None:
                try:
                    self._work(item)
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
    and queued, and the export rows of each item it exported, with the item they were made for."""

    results: dict[str, QAResult] = field(default_factory=dict)
    rows: dict[str, list[RenderJob]] = field(default_factory=dict)  # row key -> the jobs it QA'd
    exports: dict[ItemKey, tuple[ExportItem, list[dict]]] = field(default_factory=dict)


class CampaignStream:
    """QA, queue and export each asset row of ``plan`` once all of its jobs among ``render_jobs``
    are finished (rows with none among them, as under ``--retry-failed``, are left to the flow's
    stages). ``export``: export approved variants
    too (off while a run waits for designers: their decisions come later). Rows in
    ``no_export`` (rows with designers' rerolls, which are queued after the run's renders) are
    checked and queued but not exported. ``workers``: export processes (None: all cores)."""

    def __init__(self, plan: CampaignPlan, render_jobs: Sequence[RenderJob], store: Store, out: str, *,
                 placements: Mapping[str, Placement], formats: Sequence[str], styles_dir: Path, export: bool,
                 no_export: Collection[str] = (), workers: int | None = None, depth: int = 8) -> None:
        self.plan, self.store, self.out = plan, store, out
        self.placements, self.formats, self.styles_dir = placements, tuple(formats), styles_dir
        self.export, self.no_export = export, set(no_export)
        self.workers = workers or os.cpu_count() or 1
        self.streamed = Streamed()
        self._styles = {row.style.ref: row.style for row in plan.rows}
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
        self._queue: ReviewQueue | None = None
        self._pool = None
        self._in_flight: deque[tuple[ItemKey, Future]] = deque()
        self._rows_out: dict[ItemKey, list[dict]] = {}
        self._items: dict[ItemKey, ExportItem] = {}
        self._manifests: dict[str, dict[str, dict]] = {}
        self._assets = None
        self._banned = None
        self._credential = None
        self._worker: BoundedWorker[str] = BoundedWorker(self._row, depth, "campaign-stream")

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

    # -- the background thread --
    def _rendered(self, job: RenderJob) -> bool:
        """As ``render.deadletters.rendered_jobs``: made or found by this run, or not attempted and stored."""
        if job.key in self._attempted:
            return job.key in self._ok
        return self.store.exists(render_key(job.key))

    def _row(self, row: str) -> None:
        jobs = [job for job in self._rows[row] if self._rendered(job)]
        results = run_qa(jobs, self.store, self._styles) if jobs else []
        by_key = {result.job_key: result for result in results}
        if self._queue is None:
            self._queue = ReviewQueue.for_out(self.out)
            self._queue.verify(self.plan.campaign)  # as queue_for_review: lost decisions stop before queueing
        approved = []
        for variant_jobs in by_variant(self._rows[row]).values():
            if all(job.key in by_key for job in variant_jobs):
                item = self._queue.enqueue(variant_jobs, by_key)
                if item.state == "approved":
                    approved.append(ApprovedVariant.of(item))
        self.streamed.results.update(by_key)
        self.streamed.rows[row] = jobs
        if self.export and row not in self.no_export and approved:
            self._export(approved)

    def _export(self, approved) -> None:
        if self._assets is None:
            self._assets = load_assets(self.store, self.plan.campaign)
            self._banned = banned_checker(self.styles_dir)
            self._credential = load_credential()
            self._pool = export_pool(self.workers)
        items, _refused = refuse_banned_text(export_items(self.plan.campaign, approved, self._assets), self._banned)
        tasks, rows = prepare_exports(items, self.store, self.placements, formats=self.formats, workers=self.workers,
                                      credential=self._credential, manifests=self._manifests)
        for item in items:
            key = (item.asset_id, item.variant)
            self._items[key] = item
            self._rows_out[key] = [row for row in rows if (row["asset_id"], row["variant"]) == key]
        for task in tasks:
            while len(self._in_flight) >= 4 * self.workers:
                self._collect()
            item = task[0]
            self._in_flight.append(((item.asset_id, item.variant), self._pool.submit(run_export_task, task)))

    def _collect(self) -> None:
        key, future = self._in_flight.popleft()
        self._rows_out[key].extend(future.result())

    # -- the flow, once rendering is over --
    def finish(self) -> Streamed:
        """Wait for the rows still queued and the export tasks in flight; raise what failed."""
        try:
            self._worker.close()
            while self._in_flight:
                self._collect()
            self.streamed.exports = {key: (item, self._rows_out[key]) for key, item in self._items.items()}
            return self.streamed
        finally:
            self.close()

    def close(self) -> None:
        """Stop (also after a failure of the render stage): the pool and the queue are released."""
        self._worker.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None


def settled_rows(qa_jobs: Sequence[RenderJob], streamed: Streamed) -> set[str]:
    """The asset rows whose streamed QA and queueing stand: the stream checked exactly the jobs
    of the row that the run's QA checks (``qa_jobs``, from the final render report; a render
    retried after a store failure can make them differ, and then the row is checked again)."""
    by_row: dict[str, list[str]] = {}
    for job in qa_jobs:
        by_row.setdefault(job.row_key, []).append(job.key)
    return {row for row, jobs in streamed.rows.items() if [job.key for job in jobs] == by_row.get(row, [])}


def take_streamed_rows(items: Sequence[ExportItem], streamed: StreamedExports) -> tuple[list[ExportItem], list[dict], list[str]]:
    """(the items still to export, the rows streamed for the others, the files the stream wrote
    for items that are not exported as it did: to delete). A streamed item counts only when the
    item to export now is the same (renders, approval, texts, placements)."""
    todo, rows = [], []
    taken: set[ItemKey] = set()
    for item in items:
        key = (item.asset_id, item.variant)
        if key in streamed and streamed[key][0] == item:
            rows.extend(streamed[key][1])
            taken.add(key)
        else:
            todo.append(item)
    stale = [row["path"] for key, (_item, made) in streamed.items() if key not in taken for row in made
             if row.get("status") == "exported" and row.get("rewritten")]
    return todo, rows, stale
