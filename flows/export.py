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
from review.queue import ReviewQueue, item_id_for
from store import Store, open_store


@task(cache_policy=NO_CACHE)
def export_task(campaign: str, out: str, store: Store, placements: dict[str, Placement],
                formats: Sequence[str], styles_dir: Path) -> list[dict]:
    queue = ReviewQueue.for_out(out)
    try:
        queue.verify(campaign)  # lost decisions stop the export (ReviewStateLost)
        approved = queue.approved(campaign)
    finally:
        queue.close()
    items, refused = refuse_banned_text(export_items(campaign, approved, load_assets(store, campaign)),
                                        banned_checker(styles_dir))
    rows = export_assets(items, store, placements, formats=formats) + refused
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
def export_campaign(campaign: str, out: str = "out", formats: list[str] = list(DEFAULT_FORMATS)) -> list[dict]:  # noqa: B006
    """Export the approved assets of ``campaign``; returns the manifest rows written."""
    settings, placements = plan_settings()
    return export_task(campaign, out, open_store(out), placements, formats, settings.styles_dir)
