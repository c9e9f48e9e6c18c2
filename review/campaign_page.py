"""The live campaign page: ``<campaign>/report.html``, rebuilt after every run, decision, export
and publish, and the same page served by the review app (``/c/<campaign>/report``).

:func:`rebuild_report` is the one function every seam calls (the campaign flow at the end of a
run, the export flow after writing files, the review app after a decision and after a publish).
It gathers what the page shows from the store and the queue alone, so it needs no sheet:
the latest run's plan (:func:`save_report_plan`), each variant's current renders and state in
the review queue (a rerolled variant shows its new renders, not the replaced ones), the
manifest, the run records, the dead letters and the latest publish (:class:`Publishing`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plan.jobs import RenderJob
from plan.planner import CampaignPlan
from qa.metrics import PlanBlocks, campaign_metrics, load_runs, plan_blocks, report_tables
from qa.report import ReviewState, Served, Table, render_report, report_body
from qa.verdicts import QAResult
from render.deadletters import load_dead_letters
from review.queue import Item, ReviewQueue
from store.base import Store
from store.documents import (PublishRecord, QAResultRecord, ReportPlan, dump_document, read_document,
                             write_document)
from store.keys import exports_prefix, manifest_key, publish_key, qa_key, report_key, report_plan_key

LOG = logging.getLogger("brandbatch.report")
NOT_FAILURES = ("exported", "review", "rejected")  # written, held for a designer, rejected by one
Publish = Callable[[str, str, str], Sequence[str] | None]  # (campaign, reviewer, note) -> flow runs resumed


def save_report_plan(store: Store, plan: CampaignPlan) -> None:
    """What the page needs of a run's plan (its jobs and planning problems); written by every run
    whose plan changed (a rerun of the same plan touches nothing)."""
    blocks = plan_blocks(plan)
    record = ReportPlan(campaign=plan.campaign, jobs=[job.to_dict() for job in plan.jobs],
                        problems=[str(p) for p in plan.problems], rows_valid=blocks.valid,
                        rows_blocked=blocks.blocked, rows_banned=blocks.banned)
    key, data = report_plan_key(plan.campaign), dump_document(record)
    try:
        if store.get(key) == data:  # the bytes: a job's tuples read back as lists
            return
    except FileNotFoundError:
        pass  # none yet: write it
    store.put(key, data, content_type="application/json")


@dataclass(frozen=True)
class PageInputs:
    """Everything the campaign page shows, read from the store and the queue."""

    jobs: list[RenderJob]
    results: list[QAResult]
    rows: list[dict]
    problems: list[str]
    tables: list[Table]
    reviews: dict[tuple[str, int], ReviewState]
    published: PublishRecord | None


def _plan(store: Store, campaign: str) -> ReportPlan:
    try:
        return read_document(store, report_plan_key(campaign), ReportPlan)
    except FileNotFoundError:  # no run recorded its plan (yet): the queue's variants are all there is
        return ReportPlan(campaign=campaign, jobs=[], problems=[], rows_valid=0, rows_blocked=0, rows_banned=0)


def manifest_rows(store: Store, campaign: str) -> list[dict]:
    """The campaign's manifest rows ([] before its first export)."""
    try:
        rows = json.loads(store.get(manifest_key(campaign)))
    except FileNotFoundError:
        return []
    return rows if isinstance(rows, list) else []


def _current_jobs(planned: Sequence[RenderJob], items: Sequence[Item]) -> list[RenderJob]:
    """The planned jobs, each variant's replaced by its queue item's (a reroll's), then the queue's
    variants the plan does not have (queued by an earlier, larger run)."""
    by_variant = {(item.asset_id, item.variant): item for item in items}
    jobs = [by_variant[(j.row_key, j.variant)].jobs.get(j.aspect, j) if (j.row_key, j.variant) in by_variant else j
            for j in planned]
    planned_variants = {(j.row_key, j.variant) for j in planned}
    jobs += [job for item in items if (item.asset_id, item.variant) not in planned_variants
             for _, job in sorted(item.jobs.items())]
    return jobs


def _results(store: Store, jobs: Sequence[RenderJob], items: Sequence[Item]) -> list[QAResult]:
    known = {result.job_key: result for item in items for result in item.qa.values()}
    results = []
    for job in dict.fromkeys(jobs):
        if job.key in known:
            results.append(known[job.key])
            continue
        try:
            record = read_document(store, qa_key(job.key), QAResultRecord)
        except FileNotFoundError:
            continue  # not rendered or not checked yet
        results.append(QAResult.from_dict(record.model_dump()))
    return results


def _published(store: Store, campaign: str) -> PublishRecord | None:
    try:
        return read_document(store, publish_key(campaign), PublishRecord)
    except FileNotFoundError:
        return None


def page_inputs(store: Store, queue: ReviewQueue, campaign: str) -> PageInputs:
    plan = _plan(store, campaign)
    items = queue.items(campaign)
    jobs = _current_jobs([RenderJob.from_dict(d) for d in plan.jobs], items)
    results = _results(store, jobs, items)
    letters = load_dead_letters(store, campaign)
    runs = load_runs(store, campaign)
    totals = campaign_metrics(campaign, runs, PlanBlocks(plan.rows_valid, plan.rows_blocked, plan.rows_banned),
                              results, letters)
    return PageInputs(
        jobs=jobs, results=results, rows=manifest_rows(store, campaign), problems=list(plan.problems),
        tables=report_tables(totals, runs, letters),
        reviews={(i.asset_id, i.variant): ReviewState(i.state, i.approved_by) for i in items},
        published=_published(store, campaign))


def page_body(store: Store, queue: ReviewQueue, campaign: str, served: Served) -> str:
    """The page's content as the review app serves it (images as ``served`` URLs)."""
    x = page_inputs(store, queue, campaign)
    return report_body(campaign, x.jobs, x.results, store, x.rows, {"problems": x.problems}, x.tables,
                       reviews=x.reviews, published=x.published, served=served)


_REBUILDING = threading.RLock()  # one rebuild at a time in a process: each reads the state after the last


def rebuild_report(store: Store, queue: ReviewQueue, campaign: str) -> str:
    """Rebuild ``<campaign>/report.html`` from the store and the queue (written whole: a reader
    sees the old page or the new one); returns its key."""
    with _REBUILDING:
        x = page_inputs(store, queue, campaign)
        html = render_report(campaign, x.jobs, x.results, store, x.rows, {"problems": x.problems}, x.tables,
                             reviews=x.reviews, published=x.published)
        store.put(report_key(campaign), html.encode("utf-8"), content_type="text/html; charset=utf-8",
                  overwrite=True)
    return report_key(campaign)


class ReportRefresher:
    """The review app's rebuilds after decisions: at most one waits per campaign (a rebuild not
    started yet will see every decision made before it starts), so a burst of decisions
    rebuilds once or twice, not once each. A failed rebuild is logged; the decision stands."""

    def __init__(self, store: Store, queue: ReviewQueue) -> None:
        self.store, self.queue = store, queue
        self._guard = threading.Lock()
        self._waiting: set[str] = set()

    def __call__(self, campaign: str) -> None:
        with self._guard:
            if campaign in self._waiting:
                return
            self._waiting.add(campaign)
        with _REBUILDING:  # wait for a rebuild in progress; ours starts after it
            with self._guard:
                self._waiting.discard(campaign)
            try:
                rebuild_report(self.store, self.queue, campaign)
            except Exception:  # noqa: BLE001 - the page is stale until the next rebuild; say so
                LOG.exception("could not rebuild the campaign page of %s", campaign)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Publishing:
    """The review app's "publish approved": ``publish`` runs in a background thread (one per
    campaign at a time); its progress and result are the campaign's ``publish.json``
    (:class:`store.documents.PublishRecord`: running, then done with the files written, the
    failures and where the files are, or failed with the error), which the page polls. The
    campaign page is rebuilt when it ends."""

    def __init__(self, store: Store, queue: ReviewQueue, publish: Publish) -> None:
        self.store, self.queue, self.publish = store, queue, publish
        self._guard = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def status(self, campaign: str) -> PublishRecord | None:
        return _published(self.store, campaign)

    def start(self, campaign: str, reviewer: str, note: str) -> PublishRecord | None:
        """Start a publish; returns the one already running instead (and starts nothing)."""
        with self._guard:
            running = self._threads.get(campaign)
            if running is not None and running.is_alive():
                return self.status(campaign)
            record = PublishRecord(campaign=campaign, by=reviewer, note=note, started=_now(), state="running",
                                   approved=len(self.queue.approved(campaign)))
            write_document(self.store, publish_key(campaign), record)
            thread = threading.Thread(target=self._run, args=(record,), name=f"brandbatch-publish-{campaign}",
                                      daemon=True)
            self._threads[campaign] = thread
            thread.start()
        return None

    def wait(self, campaign: str, timeout: float) -> bool:
        """True once no publish of ``campaign`` runs (within ``timeout`` seconds)."""
        thread = self._threads.get(campaign)
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self, record: PublishRecord) -> None:
        campaign = record.campaign
        try:
            resumed = list(self.publish(campaign, record.by, record.note) or [])
        except Exception as exc:  # noqa: BLE001 - shown on the page; the decisions stand
            LOG.exception("publish of %s failed", campaign)
            done = record.model_copy(update={"state": "failed", "finished": _now(),
                                             "error": f"{type(exc).__name__}: {exc}"})
        else:
            rows = [] if resumed else manifest_rows(self.store, campaign)
            done = record.model_copy(update={
                "state": "done", "finished": _now(), "resumed": [str(r) for r in resumed],
                "written": sum(1 for r in rows if r.get("status", "exported") == "exported"),
                "failures": [f"{r.get('path', '')}: {r.get('error', '')}" for r in rows
                             if r.get("status", "exported") not in NOT_FAILURES],
                "where": "" if resumed else self.store.location(exports_prefix(campaign))})
        write_document(self.store, publish_key(campaign), done)
        try:
            rebuild_report(self.store, self.queue, campaign)
        except Exception:  # noqa: BLE001
            LOG.exception("could not rebuild the campaign page of %s after its publish", campaign)
