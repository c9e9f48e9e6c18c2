"""Waiting for designers in deployment runs: ``campaign_batch`` suspends after queuing, and the
review page's "publish approved" resumes it.

Suspending (``suspend_flow_run``) ends the flow run's process, so no worker is held while
designers review. "Publish approved" resumes every run suspended for that campaign with a
:class:`ReviewDone` input; Prefect then schedules the run again and a worker runs the flow
from the start. Every stage before the wait resumes by content (renders by job key, an
idempotent queue), the suspend with the same key returns the input at once, and the export
ships what is approved at that moment.

Timeout policy: the wait must be a duration of at most ``flows.batch.MAX_WAIT`` (7 days). When it runs out,
Prefect's server marks the run Failed ("suspended and never resumed"): nothing of ours runs
then, because no process is left, and the timed-out run exports nothing. Decisions stay in
the queue; "publish approved" (which finds no waiting run and so starts the export flow),
``brandbatch export`` or the next scheduled run exports what is approved by then.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
                                            FlowRunFilterStateType)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run, suspend_flow_run
from prefect.input import RunInput

from exports.stage import DEFAULT_FORMATS

FLOW_NAME = "campaign_batch"


class ReviewDone(RunInput):
    """What "publish approved" sends a suspended run: who published, and their note."""

    approved_by: str
    note: str = ""


def pause_key(campaign: str) -> str:
    return f"review-{campaign}"


def wait_for_designers(campaign: str, wait: dt.timedelta | None, queued: int) -> ReviewDone | None:
    """In a deployment run with ``wait`` set: suspend until "publish approved" (or the timeout).

    Returns the :class:`ReviewDone` the run was resumed with, or None when it did not wait:
    ``wait`` unset, nothing waits for a designer, or not a deployment run (nothing could
    resume it; logged, and the run goes on to export what is approved now).
    """
    if wait is None:
        return None
    logger = get_run_logger()
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or run.deployment_id is None:
        logger.warning("wait_for_review is ignored: this run of %s has no deployment, so nothing could resume it "
                       "after a suspend; exporting what is approved now", campaign)
        return None
    key = pause_key(campaign)
    resumed = key in (run.empirical_policy.pause_keys or set())
    if queued == 0 and not resumed:
        logger.info("nothing of %s waits for a designer: exporting without waiting", campaign)
        return None
    if not resumed:
        logger.info("%d variant(s) of %s wait for designers: suspending for at most %s until "
                    "'publish approved'", queued, campaign, wait)
    # A resumed run gets here again (the flow re-executes): the suspend with the same key has
    # fired already, so Prefect returns the publisher's input at once.
    done = suspend_flow_run(wait_for_input=ReviewDone, timeout=math.ceil(wait.total_seconds()), key=key)
    logger.info("review of %s published by %s%s; %d variant(s) still queued are not exported", campaign,
                done.approved_by, f" ({done.note})" if done.note else "", queued)
    return done


def waiting_runs(campaign: str) -> list[FlowRun]:
    """The ``campaign_batch`` runs suspended waiting for the review of ``campaign``."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
    return [r for r in runs if r.state is not None and r.state.state_details.pause_key == pause_key(campaign)]


def resume_waiting(campaign: str, reviewer: str, note: str = "") -> list[FlowRun]:
    """Resume every run waiting for ``campaign``'s review; returns those resumed (a run whose
    wait ran out meanwhile is skipped)."""
    done = ReviewDone(approved_by=reviewer, note=note).model_dump()
    resumed = []
    for run in waiting_runs(campaign):
        try:
            resume_flow_run(run.id, run_input=done)
        except (FlowPauseTimeout, NotPausedError):
            continue  # timed out or resumed by someone else since we looked
        resumed.append(run)
    return resumed


def publisher(out: str, formats: Sequence[str] = DEFAULT_FORMATS) -> Callable[[str, str, str], list[str]]:
    """The review app's "publish approved": resume the runs waiting for this campaign's review
    (returns their flow run ids), else export its approved assets now (the ``export_campaign``
    flow; returns [])."""
    from flows.export import export_campaign
    from flows.runtime import prefect_server, run_flow

    def publish(campaign: str, reviewer: str, note: str) -> list[str]:
        # without a Prefect server no run can be waiting (a temporary one holds none): no query
        resumed = resume_waiting(campaign, reviewer, note) if prefect_server() else []
        if not resumed:
            run_flow("flows.export:export_campaign", export_campaign.fn, campaign=campaign, out=out,
                     formats=list(formats))
        return [str(run.id) for run in resumed]

    return publish
