"""The ``export_campaign`` flow: export every approved, not yet exported asset of a campaign.

Approvals come from the review queue (designers, and ``qa-auto`` for clean passes); files
already exported with the same export fingerprint are kept, so this is safe to run any time (``brandbatch export``, the
review page's "publish approved" button, or a deployment).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from exports.assemble import banned_checker, export_items, load_assets, plan_settings
from exports.placements import Placement
from exports.stage import DEFAULT_FORMATS, export_assets, held_for_review, refuse_banned_text, write_manifests
from pipeline.stream import StreamedExports, take_streamed_rows
from review.campaign_page import rebuild_report
from review.queue import ReviewQueue, item_id_for
from store import Store, open_store
from store.locks import campaign_lock


@task(cache_policy=NO_CACHE)
def export_task(campaign: str, out: str, store: Store, placements: dict[str, Placement],
                formats: Sequence[str], styles_dir: Path, streamed: StreamedExports | None = None) -> list[dict]:
    """``streamed``: what ``pipeline.stream`` exported during rendering, taken where the item is the same."""
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify(campaign)  # lost decisions stop the export (ReviewStateLost)
        approved = queue.approved(campaign)
    finally:
        queue.close()
    items, refused = refuse_banned_text(export_items(campaign, approved, load_assets(store, campaign)),
                                        banned_checker(styles_dir))
    todo, reused, stale = take_streamed_rows(items, streamed or {})
    for path in stale:  # written while rendering for an approval that changed since
        store.delete(path)
    rows = sorted(export_assets(todo, store, placements, formats=formats) + reused, key=lambda r: r["path"]) + refused
    write_manifests(store, campaign, rows, approved={(i.asset_id, i.variant) for i in items})
    held = held_for_review(rows)
    if held:
        queue = ReviewQueue.for_out(out)
        try:
            for (asset_id, variant), reasons in held.items():
                queue.hold_for_review(item_id_for(campaign, asset_id, variant), reasons)
        finally:
            queue.close()
    return rows


@flow(name="export_campaign")
def export_campaign(campaign: str, out: str = "out", formats: list[str] = list(DEFAULT_FORMATS),  # noqa: B006
                    lock_wait: float = 0.0) -> list[dict]:
    """Export the approved assets of ``campaign`` (holding its lock: one run or export of a
    campaign at a time, waiting ``lock_wait`` seconds); returns the manifest rows written."""
    settings, placements = plan_settings()
    store = open_store(out)
    with campaign_lock(store, campaign, wait=lock_wait):
        rows = export_task(campaign, out, store, placements, formats, settings.styles_dir)
        queue = ReviewQueue.for_out(out)
        try:
            rebuild_report(store, queue, campaign)  # the campaign page shows the new files
        finally:
            queue.close()
        return rows
