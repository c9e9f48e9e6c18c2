"""The ``campaign_batch`` flow's steps and body: plan -> render -> QA -> review queue -> export ->
manifest + report. ``flows.campaign`` makes ``campaign_batch`` a Prefect flow (deployments, and
commands when a Prefect server is configured); a command without a server calls it here, and
nothing here imports Prefect (``flows.runtime``: steps become Prefect tasks in flow runs only).

QA, queueing and export of each asset row start while later rows render (``pipeline.stream``,
``$BRANDBATCH_STREAM``); the stages after rendering then do what is left, with the same result.

Only wiring lives here; each task is a few lines around a plain function of a stage package.
Resume is by content: renders are stored by job key, the queue is idempotent and exports
skip files already written, so a rerun does only the missing work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from exports.assemble import asset_snapshot, export_approved, plan_settings, save_assets
from exports.overlay import sheet_text_problems
from exports.placements import Placement
from qa.report import credential_note
from exports.stage import DEFAULT_FORMATS, export_failure_lines, rewrite_counts
from flows import metrics
from flows.progress import progress_bar
from flows.runtime import markdown_artifact, new_run_id, run_logger, step
from flows.reroll import record_launch
from flows.sharding import RENDER_RETRIES, check_deployment, shard_deployment
from pipeline.stream import CampaignStream, Streamed, StreamedExports, settled_rows
from plan.jobs import RenderJob
from plan.planner import CampaignPlan, PlanSettings, plan_campaign
from plan.sheet import campaign_name, read_sheet
from plan.styles import Style
from plan.uploads import store_inputs
from qa import QAResult, run_qa, summary_markdown
from qa.metrics import close_run
from qa.report import upscale_warnings
from qa.verdicts import qa_error_lines
from render.deadletters import load_dead_letters, rendered_jobs, retry_jobs
from render.stage import RenderReport, render_missing
from review.actions import queue_for_review, queue_rerolls, styles_qa
from review.campaign_page import rebuild_report, save_report_plan
from review.queue import ReviewQueue, database_url
from settings import load_settings
from store import Store, open_store
from store.keys import manifest_key, report_key
from store.locks import campaign_lock


MAX_WAIT = dt.timedelta(days=7)


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read `true` as 1 second
        raise ValueError("wait_for_review is how long to wait, e.g. PT12H (ISO 8601) or seconds, "
                         f"not {str(value).lower()}")
    return value


def _bounded(wait: dt.timedelta) -> dt.timedelta:
    if not dt.timedelta(0) < wait <= MAX_WAIT:
        raise ValueError(f"wait_for_review must be more than 0 and at most {MAX_WAIT.days} days (e.g. PT12H) "
                         f"but is {wait}")
    return wait


# campaign_batch's wait_for_review (flows.review_wait has the timeout policy)
ReviewWait = Annotated[dt.timedelta, BeforeValidator(_not_a_bool), AfterValidator(_bounded)]


@dataclass
class CampaignSummary:
    campaign: str
    out: str
    jobs: int
    rendered: int
    cached: int
    failed: list[dict]
    verdicts: dict[str, int]
    exported: int
    rewritten: dict[str, int] = field(default_factory=dict)  # export files written this run, by reason
    queued: int = 0
    rerolled: int = 0
    problems: list[str] = field(default_factory=list)
    manifest: str = ""
    report: str = ""
    dead_letters: int = 0
    credential: str = ""  # which C2PA credential signed the exports (qa.report.credential_note)
    held: int = 0  # export files held for review: overlays would be illegible (status "review")
    qa_errors: list[str] = field(default_factory=list)  # one line each
    export_failures: list[str] = field(default_factory=list)  # one line each
    upscale_warnings: list[str] = field(default_factory=list)  # exports still enlarged above max_upscale


@step()
def plan_task(sheet: str, settings: PlanSettings, limit: int | None, store: Store) -> CampaignPlan:
    plan = plan_campaign(read_sheet(sheet), settings, limit=limit)
    plan.problems.extend(sheet_text_problems(plan, settings.styles_dir))  # glyphs no font has
    store_inputs(store, plan.rows)  # packshots and masks, by their bytes' sha256
    save_assets(store, plan.campaign, asset_snapshot(plan, settings.styles_dir))
    return plan


@step(**RENDER_RETRIES)
def render_task(jobs: Sequence[RenderJob], store: Store, batch_size: int, progress: bool,
                max_images: int | None, max_gpu_seconds: float | None,
                on_done: Sequence[Callable[[str], None]] = (),
                on_failed: Callable[[str], None] | None = None,
                on_start: Callable[[], None] | None = None) -> RenderReport:
    """Render ``jobs`` here, or on shard workers when a shard deployment is set; ``on_done`` and
    ``on_failed`` per job, ``on_start`` when rendering starts in this process."""
    with progress_bar("rendering", len(jobs), enabled=progress) as advance:
        failed: set[str] = set()  # failed or left by the budget: counted apart by the progress line

        def fail(key: str) -> None:
            failed.add(key)
            if on_failed:
                on_failed(key)

        def done(key: str) -> None:
            advance(key, key not in failed)
            for call in on_done:
                call(key)

        if deployment := shard_deployment():  # sharded on Prefect workers (flows/shard.py)
            from flows.shard import render_sharded

            return render_sharded(jobs, store, deployment, batch_size=batch_size, on_done=done, on_failed=fail,
                                  max_images=max_images, max_gpu_seconds=max_gpu_seconds)
        return render_missing(jobs, store, batch_size=batch_size, on_done=done, on_failed=fail, on_start=on_start,
                              max_images=max_images, max_gpu_seconds=max_gpu_seconds)


@step()
def qa_task(jobs: Sequence[RenderJob], store: Store, plan: CampaignPlan, streamed: Streamed) -> list[QAResult]:
    """QA results of ``jobs`` in order: the stream's for the rows it settled, the others checked now."""
    settled = settled_rows(jobs, streamed)
    rest = [job for job in jobs if job.row_key not in settled]
    by_key = {**streamed.results, **{r.job_key: r for r in run_qa(rest, store, plan.styles())}}
    return [by_key[job.key] for job in jobs]


@step()
def rerolls_task(queue: ReviewQueue, campaign: str) -> list[RenderJob]:
    """The jobs of the rerolls designers asked for since the last run."""
    return queue.pending_rerolls(campaign)


@step()
def reroll_qa_task(jobs: Sequence[RenderJob], store: Store, styles_dir: str) -> list[QAResult]:
    return styles_qa(store, styles_dir)(jobs) if jobs else []


@step()
def review_task(queue: ReviewQueue, plan: CampaignPlan, results: list[QAResult], rerolls: Sequence[RenderJob],
                rendered_rerolls: Sequence[RenderJob], queued_rows: Collection[str] = ()) -> int:
    """Queue the campaign (but ``queued_rows``, queued by the stream) and the rerolls rendered
    this run; returns the variants waiting for a designer."""
    by_key = {r.job_key: r for r in results}
    queue_for_review(queue, plan, by_key, skip=queued_rows)
    queue_rerolls(queue, rendered_rerolls, by_key, rerolls)
    return len(queue.items(plan.campaign, state="queued"))


@step()
def export_task(campaign: str, queue: ReviewQueue, store: Store, placements: dict[str, Placement],
                formats: Sequence[str], styles_dir: Path, streamed: StreamedExports | None = None,
                styles: Mapping[str, Style] | None = None) -> list[dict]:
    """``streamed``: what ``pipeline.stream`` exported during rendering, taken where the item is
    the same; ``styles``: the plan's style versions, by ref."""
    return export_approved(campaign, queue, store, placements, formats, styles_dir, streamed, styles)


@step()
def refresh_report(queue: ReviewQueue, store: Store, plan: CampaignPlan) -> None:
    """Record the plan the campaign page shows and rebuild ``report.html``."""
    save_report_plan(store, plan)
    rebuild_report(store, queue, plan.campaign)


def campaign_batch(
    sheet: str,
    out: str = "out",
    model: str | None = None,
    limit: int | None = None,
    styles: str | None = None,
    allow_draft: bool = False,
    batch_size: int = 4,
    formats: list[str] = list(DEFAULT_FORMATS),  # noqa: B006 (Prefect parameter default)
    progress: bool = False,
    max_images: int | None = None,
    max_gpu_seconds: float | None = None,
    retry_failed: bool = False,
    wait_for_review: ReviewWait | None = None,
    lock_wait: float = 0.0,
) -> CampaignSummary:
    """Render, check, queue and export one campaign sheet; reruns do only the missing work.

    Budget: after ``max_images`` new renders or ``max_gpu_seconds`` of render time no new
    batch starts; the rest fail with reason ``budget`` and the next run resumes them.
    ``retry_failed``: render only the campaign's dead letters (jobs that failed before).
    ``wait_for_review`` (deployment runs, e.g. PT12H): after queuing, suspend until a designer
    publishes or the time runs out (``flows.review_wait`` has the timeout policy).
    ``lock_wait``: seconds to wait for another run of the campaign to end before refusing
    (``store.locks.CampaignBusy``)."""
    started = dt.datetime.now(dt.timezone.utc)
    logger = run_logger()
    load_settings()  # every BRANDBATCH_* variable is checked before any work (deployment runs have no CLI)
    database_url(out)  # an S3 run needs BRANDBATCH_REVIEW_DB: say so before rendering anything
    settings, placements = plan_settings(styles, allow_draft=allow_draft, model=model)
    store = open_store(out)
    # one run of a campaign at a time, with one review queue
    with campaign_lock(store, campaign_name(sheet), wait=lock_wait), closing(ReviewQueue.for_out(out)) as queue:
        queue.verify(campaign_name(sheet))  # lost review state stops the run before any work
        for path in store.clean_temp_files():  # writes of a killed run
            logger.info("removed %s, left by a write that was cut short", path)
        plan = plan_task(sheet, settings, limit, store)
        record_launch(out, plan.campaign, {"sheet": sheet, "out": out, "model": model, "limit": limit, "styles": styles,
                                           "allow_draft": allow_draft, "batch_size": batch_size, "formats": list(formats),
                                           "max_images": max_images, "max_gpu_seconds": max_gpu_seconds})
        for problem in plan.problems:
            logger.warning(str(problem))
        letters = load_dead_letters(store, plan.campaign)
        # Designers' rerolls render, check and queue like planned jobs (on the GPU pool when sharded);
        # --retry-failed renders dead letters only.
        rerolls = [] if retry_failed else rerolls_task(queue, plan.campaign)
        jobs = [*(retry_jobs(plan.jobs, letters) if retry_failed else plan.jobs), *rerolls]
        tracker = metrics.RunProgress(plan.campaign, len(jobs))

        # QA, queueing and export of each finished asset row run while later rows render (pipeline.stream)
        # (as shards on the cpu pool when $BRANDBATCH_CHECK_DEPLOYMENT names a deployment: flows/shard.py)
        dispatcher = None
        if checks := check_deployment():
            from flows.shard import CheckShards

            dispatcher = CheckShards(checks, store, plan.campaign, plan.styles(), formats,
                                     styles)
        stream = CampaignStream(
            plan, jobs, store, out, queue, placements=placements, formats=formats, styles_dir=settings.styles_dir,
            export=wait_for_review is None, no_export={job.row_key for job in rerolls},
            rows_per_shard=load_settings().check_shard_rows,
            dispatcher=dispatcher) if load_settings().stream or checks else None
        try:
            rendered = render_task(jobs, store, batch_size, progress, max_images, max_gpu_seconds,
                                   [tracker.render_done, *([stream.done] if stream else [])],
                                   stream.failed if stream else None, stream.rendering if stream else None)
            streamed = stream.finish() if stream else Streamed()
        finally:
            if stream:
                stream.close()
        for failure in rendered.failed:
            logger.error("render %s failed (%s): %s", failure.job_key[:12], failure.reason, failure.message)
        tracker.render_finished()
        rendered_rerolls = rendered_jobs(rerolls, rendered, store)
        qa_jobs = rendered_jobs(plan.jobs, rendered, store)
        results = [*qa_task(qa_jobs, store, plan, streamed),
                   *reroll_qa_task(rendered_rerolls, store, str(settings.styles_dir))]
        queued = review_task(queue, plan, results, rerolls, rendered_rerolls, settled_rows(qa_jobs, streamed))
        rerolled = len(rendered_rerolls)
        if wait_for_review is not None:  # deployments: suspend until published
            from flows.review_wait import wait_for_designers

            wait_for_designers(plan.campaign, wait_for_review, queued)

        campaign = plan.campaign
        rows = export_task(campaign, queue, store, placements, formats, settings.styles_dir, streamed.exports,
                           plan.styles())
        markdown_artifact(summary_markdown(campaign, results), key=metrics.artifact_key("qa", campaign),
                                 description=f"QA summary of {campaign}")
        closed = close_run(store, plan, jobs, rendered, results, rows, letters, started=started,
                           render_seconds=tracker.render_seconds, run_id=new_run_id(),
                           retry_failed=retry_failed, whole_plan=limit is None)
        metrics.publish_artifacts(closed.record, closed.totals, closed.runs, closed.letters)
        letters = closed.letters
        refresh_report(queue, store, plan)
        tracker.stage(100, f"done: {len(rendered.rendered)} rendered, {len(rendered.failed)} failed")
        verdicts: dict[str, int] = {}
        for result in results:
            verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
        return CampaignSummary(
            campaign=campaign, out=store.root, jobs=len(plan.jobs), rendered=len(rendered.rendered),
            cached=len(rendered.cached),
            failed=[{"job_key": f.job_key, "reason": f.reason, "message": f.message} for f in rendered.failed],
            verdicts=verdicts, exported=sum(1 for r in rows if r.get("status") == "exported"),
            rewritten=rewrite_counts(rows), queued=queued,
            rerolled=rerolled, problems=[str(p) for p in plan.problems],
            manifest=store.location(manifest_key(campaign)), report=store.location(report_key(campaign)),
            dead_letters=len(letters), credential=credential_note(rows),
            held=sum(1 for r in rows if r.get("status") == "review"), qa_errors=qa_error_lines(results),
            export_failures=export_failure_lines(rows, placements, formats), upscale_warnings=upscale_warnings(rows),
        )
