"""The ``campaign_batch`` flow: plan -> render -> QA -> approve -> export -> manifest + report.

Only wiring lives here; each task is a few lines around a plain function of a stage package.
Resume is by content: renders are stored by job key, exports skip files already written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from exports.placements import Placement
from exports.stage import ExportItem, export_assets, write_manifests
from flows.progress import progress_bar
from flows.assemble import plan_settings, renders_by_asset, variant_verdict
from plan.jobs import RenderJob
from plan.planner import CampaignPlan, PlanSettings, plan_campaign
from plan.sheet import read_sheet
from qa import QAResult, render_report, run_qa
from render.stage import RenderReport, render_missing
from review.approvals import auto_approval
from store import Store, open_store


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
    queued: int = 0
    problems: list[str] = field(default_factory=list)
    manifest: str = ""
    report: str = ""


@task(cache_policy=NO_CACHE)
def plan_task(sheet: str, settings: PlanSettings, limit: int | None) -> CampaignPlan:
    return plan_campaign(read_sheet(sheet), settings, limit=limit)


@task(cache_policy=NO_CACHE)
def render_task(jobs: Sequence[RenderJob], store: Store, batch_size: int, progress: bool) -> RenderReport:
    with progress_bar("rendering", len(jobs), enabled=progress) as advance:
        return render_missing(jobs, store, batch_size=batch_size, on_done=advance)


@task(cache_policy=NO_CACHE)
def qa_task(jobs: Sequence[RenderJob], store: Store, plan: CampaignPlan) -> list[QAResult]:
    styles = {row.style.ref: row.style for row in plan.rows}
    return run_qa(jobs, store, styles)


@task(cache_policy=NO_CACHE)
def export_task(campaign: str, items: Sequence[ExportItem], store: Store, placements: dict[str, Placement],
                formats: Sequence[str]) -> list[dict]:
    rows = export_assets(items, store, placements, formats=formats)
    write_manifests(store, campaign, rows)
    return rows


def approved_items(plan: CampaignPlan, results: dict[str, QAResult], usable: set[str]) -> list[ExportItem]:
    """Export items for every variant that is approved (automatically, for clean passes)."""
    rows = {r.asset_id: r for r in plan.rows}
    items = []
    for (asset_id, variant), renders in sorted(renders_by_asset(plan, usable).items()):
        row = rows[asset_id]
        if set(renders) != set(row.aspects):
            continue  # a render of this variant failed: nothing to export yet
        verdict = variant_verdict(list(renders.values()), results)
        approval = auto_approval(plan.campaign, asset_id, variant, [j.key for j in renders.values()], verdict)
        if approval is None:
            continue
        items.append(ExportItem(
            campaign=plan.campaign, asset_id=asset_id, row=row.row, variant=variant, placements=row.placements,
            renders=renders, qa_verdict=verdict, approval_id=approval.approval_id,
            approved_by=approval.approved_by, alt_text=row.alt_text,
            headline=row.cells.get("headline", ""), cta=row.cells.get("cta", ""),
        ))
    return items


@flow(name="campaign_batch", log_prints=True)
def campaign_batch(
    sheet: str,
    out: str = "out",
    model: str | None = None,
    limit: int | None = None,
    styles: str | None = None,
    allow_draft: bool = False,
    batch_size: int = 4,
    formats: list[str] = ["webp", "avif", "upload"],  # noqa: B006 (Prefect parameter default)
    progress: bool = False,
) -> CampaignSummary:
    """Render, check and export one campaign sheet; reruns do only the missing work."""
    logger = get_run_logger()
    settings, placements = plan_settings(styles, allow_draft=allow_draft, model=model)
    plan = plan_task(sheet, settings, limit)
    for problem in plan.problems:
        logger.warning(str(problem))
    store = open_store(out)
    rendered = render_task(plan.jobs, store, batch_size, progress)
    failed = {f.job_key for f in rendered.failed}
    usable = [j for j in plan.jobs if j.key not in failed]
    results = qa_task(usable, store, plan)
    by_key = {r.job_key: r for r in results}
    items = approved_items(plan, by_key, {j.key for j in usable})
    queued = sum(1 for renders in renders_by_asset(plan, {j.key for j in usable}).values()
                 if variant_verdict(list(renders.values()), by_key) == "review")
    campaign = plan.campaign
    rows = export_task(campaign, items, store, placements, formats)
    html = render_report(campaign, plan.jobs, results, store, rows,
                         extra={"problems": [str(p) for p in plan.problems]})
    store.put(f"{campaign}/report.html", html.encode("utf-8"), content_type="text/html; charset=utf-8",
              overwrite=True)
    verdicts: dict[str, int] = {}
    for r in results:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    return CampaignSummary(
        campaign=campaign, out=store.root, jobs=len(plan.jobs), rendered=len(rendered.rendered),
        cached=len(rendered.cached),
        failed=[{"job_key": f.job_key, "reason": f.reason, "message": f.message} for f in rendered.failed],
        verdicts=verdicts, exported=len(rows), queued=queued, problems=[str(p) for p in plan.problems],
        manifest=store.location(f"{campaign}/manifest.json"), report=store.location(f"{campaign}/report.html"),
    )

