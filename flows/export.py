"""The ``export_campaign`` flow: export every approved, not yet exported asset of a campaign.

Approvals come from the review queue (designers, and ``qa-auto`` for clean passes); files
already exported with the same export fingerprint are kept, so this is safe to run any time (``brandbatch export``, the
review page's "publish approved" button, or a deployment). The work is ``exports.assemble.export_approved``.
"""

from __future__ import annotations

from contextlib import closing

from prefect import flow

from exports.assemble import plan_settings
from exports.stage import DEFAULT_FORMATS
from flows.batch import export_task
from review.campaign_page import rebuild_report
from review.queue import ReviewQueue
from store import open_store
from store.locks import campaign_lock


@flow(name="export_campaign")
def export_campaign(campaign: str, out: str = "out", formats: list[str] = list(DEFAULT_FORMATS),  # noqa: B006
                    lock_wait: float = 0.0) -> list[dict]:
    """Export the approved assets of ``campaign`` (holding its lock: one run or export of a
    campaign at a time, waiting ``lock_wait`` seconds); returns the manifest rows written."""
    settings, placements = plan_settings()
    store = open_store(out)
    with campaign_lock(store, campaign, wait=lock_wait), closing(ReviewQueue.for_out(out)) as queue:
        rows = export_task(campaign, queue, store, placements, formats, settings.styles_dir)
        rebuild_report(store, queue, campaign)  # the campaign page shows the new files
        return rows
