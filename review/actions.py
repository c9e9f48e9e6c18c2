"""What the campaign flow does with the queue: queue a campaign's QA'd renders, and queue the
rerolls it rendered and checked so they come back to the designers."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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


def queue_for_review(queue: ReviewQueue, plan: CampaignPlan, results: Mapping[str, QAResult],
                     skip: Collection[str] = ()) -> int:
    """Queue every asset variant of ``plan`` whose renders all have a QA result; returns how
    many of the plan's variants wait for a designer (state ``queued``).

    ``review`` variants wait for a designer; ``pass`` variants are listed as approved by
    ``qa-auto`` and ``fail`` ones as rejected by ``qa-auto`` (reason ``qa_fail``), so the
    queue shows the whole campaign and designers can still reroll anything. A variant with
    a render missing (render failed) is left out: a rerun renders it and queues it then.
    A queue that disagrees with its decision log raises ``ReviewStateLost`` before anything is queued.
    ``skip``: asset rows queued already with these results (``pipeline.stream``); not counted.
    """
    queue.verify(plan.campaign)
    waiting = 0
    for jobs in by_variant(plan.jobs).values():
        if jobs[0].row_key not in skip and all(job.key in results for job in jobs):
            waiting += queue.enqueue(jobs, results).state == "queued"
    return waiting


def queue_rerolls(queue: ReviewQueue, rendered: Sequence[RenderJob], results: Mapping[str, QAResult],
                  jobs: Sequence[RenderJob]) -> list[Item]:
    """Queue each variant of the reroll ``jobs`` whose renders all exist (``rendered``), with
    their QA ``results`` (a render without one queues as ``review``: fail closed); a variant
    with a render missing keeps waiting for its reroll (the next run renders it)."""
    have = {job.key for job in rendered}
    return [queue.enqueue(variant_jobs, results) for variant_jobs in by_variant(jobs).values()
            if all(job.key in have for job in variant_jobs)]


def styles_qa(store: Store, styles_dir: str | os.PathLike[str]) -> QACheck:
    """A QA check for reroll jobs: ``qa.run_qa`` with each job's style from ``styles_dir``."""
    def check(jobs: Sequence[RenderJob]) -> list[QAResult]:
        from plan.styles import StyleLibrary
        from qa import run_qa

        library = StyleLibrary(Path(styles_dir))
        styles = {f"{j.style}@{j.style_version}": library.get(j.style, j.style_version) for j in jobs}
        return run_qa(jobs, store, styles)
    return check
