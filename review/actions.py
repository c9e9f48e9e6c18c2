"""What the flow and the web app do with the queue: queue a campaign's QA'd renders, and
render + check a reroll so it comes back to the designers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from plan.jobs import RenderJob
from plan.planner import CampaignPlan
from qa.verdicts import QAResult
from review.queue import Item, ReviewQueue
from store.base import Store

QACheck = Callable[[Sequence[RenderJob]], Iterable[QAResult]]


def by_variant(jobs: Iterable[RenderJob]) -> dict[tuple[str, int], list[RenderJob]]:
    """(asset_id, variant) -> its jobs, in the order given."""
    out: dict[tuple[str, int], list[RenderJob]] = {}
    for job in jobs:
        out.setdefault((job.row_key, job.variant), []).append(job)
    return out


def queue_for_review(out: str | os.PathLike[str], plan: CampaignPlan, results: Mapping[str, QAResult]) -> int:
    """Queue every asset variant of ``plan`` whose renders all have a QA result; returns how
    many of the plan's variants wait for a designer (state ``queued``).

    ``review`` variants wait for a designer; ``pass`` variants are listed as approved by
    ``qa-auto`` and ``fail`` ones as rejected by ``qa-auto`` (reason ``qa_fail``), so the
    queue shows the whole campaign and designers can still reroll anything. A variant with
    a render missing (render failed) is left out: a rerun renders it and queues it then.
    A queue that disagrees with its decision log raises ``ReviewStateLost`` before anything is queued.
    """
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify(plan.campaign)
        waiting = 0
        for jobs in by_variant(plan.jobs).values():
            if all(job.key in results for job in jobs):
                waiting += queue.enqueue(jobs, results).state == "queued"
        return waiting
    finally:
        queue.close()


def render_rerolls(queue: ReviewQueue, store: Store, jobs: Sequence[RenderJob], check: QACheck | None = None,
                   *, batch_size: int = 4) -> list[Item]:
    """Render reroll jobs (only those missing), QA them with ``check`` and queue the variants
    whose renders all exist. Without ``check`` the renders queue with verdict ``review``
    (reason ``qa_missing``): fail closed, a designer looks at them."""
    from render.stage import render_missing

    report = render_missing(list(jobs), store, batch_size=batch_size)
    failed = {f.job_key for f in report.failed}
    usable = [j for j in jobs if j.key not in failed]
    results = {r.job_key: r for r in check(usable)} if check is not None and usable else {}
    return queue_rerolls(queue, usable, results, jobs)


def queue_rerolls(queue: ReviewQueue, rendered: Sequence[RenderJob], results: Mapping[str, QAResult],
                  jobs: Sequence[RenderJob]) -> list[Item]:
    """Queue each variant of the reroll ``jobs`` whose renders all exist (``rendered``), with
    their QA ``results`` (a render without one queues as ``review``: fail closed); a variant
    with a render missing keeps waiting for its reroll (the next run renders it)."""
    have = {job.key for job in rendered}
    return [queue.enqueue(variant_jobs, results) for variant_jobs in by_variant(jobs).values()
            if all(job.key in have for job in variant_jobs)]


def reroll_and_render(queue: ReviewQueue, store: Store, item_id: str, reviewer: str, *, expected_version: int,
                      reason: str | None = None, note: str | None = None, check: QACheck | None = None) -> list[Item]:
    """A designer's reroll, start to end: record it, render the new seeds, QA, re-queue."""
    jobs = queue.reroll(item_id, reviewer, expected_version=expected_version, reason=reason, note=note)
    return render_rerolls(queue, store, jobs, check)


def styles_qa(store: Store, styles_dir: str | os.PathLike[str]) -> QACheck:
    """A QA check for reroll jobs: ``qa.run_qa`` with each job's style from ``styles_dir``."""
    def check(jobs: Sequence[RenderJob]) -> list[QAResult]:
        from plan.styles import StyleLibrary
        from qa import run_qa

        library = StyleLibrary(Path(styles_dir))
        styles = {f"{j.style}@{j.style_version}": library.get(j.style, j.style_version) for j in jobs}
        return run_qa(jobs, store, styles)
    return check


def rerenderer(out: str | os.PathLike[str], store: Store,
               styles_dir: str | os.PathLike[str] | None = None) -> Callable[[Sequence[RenderJob]], list[Item]]:
    """What the web app calls after a reroll request: render the new jobs, QA them (with the
    styles in ``styles_dir``; without, they queue as ``review``) and re-queue them. One reroll
    renders at a time, so a burst of requests does not load many pipelines at once."""
    check = styles_qa(store, styles_dir) if styles_dir is not None else None
    lock = threading.Lock()

    def rerender(jobs: Sequence[RenderJob]) -> list[Item]:
        with lock:
            queue = ReviewQueue.for_out(out)
            try:
                return render_rerolls(queue, store, jobs, check)
            finally:
                queue.close()
    return rerender
