"""Approvals. A variant whose renders all pass QA (and were not sampled for spot checks)
is approved automatically by ``qa-auto``; anything else waits for a designer."""

from __future__ import annotations

from dataclasses import dataclass

from plan.jobs import sha256_text

AUTO_REVIEWER = "qa-auto"


@dataclass(frozen=True)
class Approval:
    approval_id: str
    approved_by: str


def auto_approval(campaign: str, asset_id: str, variant: int, job_keys: list[str], verdict: str) -> Approval | None:
    """The automatic approval of a passing variant, stable for the same renders."""
    if verdict != "pass":
        return None
    digest = sha256_text("|".join(["auto", campaign, asset_id, str(variant), *sorted(job_keys)]))
    return Approval(approval_id=f"auto-{digest[:16]}", approved_by=AUTO_REVIEWER)
