"""Plain glue between stages: where inputs live, and which render each export uses.

Kept out of the Prefect flow so it is unit-tested without a server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from exports.placements import Placement, load_placements
from plan.jobs import RenderJob
from plan.planner import CampaignPlan, PlanSettings
from qa import QAResult

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Paths:
    styles: Path
    templates: Path
    placements_file: Path | None


def resolve_paths(styles: str | None = None, placements_file: str | None = None) -> Paths:
    """``--styles`` (or $BRANDBATCH_STYLES), else ./styles, else the project's own styles."""
    def pick(explicit: str | None, env: str, name: str) -> Path:
        if explicit:
            return Path(explicit)
        if os.environ.get(env):
            return Path(os.environ[env])
        local = Path.cwd() / name
        return local if local.is_dir() else REPO_ROOT / name

    extra = placements_file or os.environ.get("BRANDBATCH_PLACEMENTS")
    return Paths(
        styles=pick(styles, "BRANDBATCH_STYLES", "styles"),
        templates=pick(None, "BRANDBATCH_TEMPLATES", "templates") / "prompts",
        placements_file=Path(extra) if extra else None,
    )


def plan_settings(styles: str | None = None, *, allow_draft: bool = False, model: str | None = None,
                  placements_file: str | None = None) -> tuple[PlanSettings, dict[str, Placement]]:
    """Everything planning needs, for ``validate`` and ``run`` alike."""
    paths = resolve_paths(styles, placements_file)
    placements = load_placements(paths.placements_file)
    settings = PlanSettings(
        styles_dir=paths.styles, templates_dir=paths.templates,
        placements={p.id: (p.width, p.height) for p in placements.values()},
        allow_draft=allow_draft, model_override=model,
    )
    return settings, placements


def renders_by_asset(plan: CampaignPlan, usable: set[str]) -> dict[tuple[str, int], dict[str, RenderJob]]:
    """(asset_id, variant) -> {aspect: job}, only jobs whose render is usable."""
    out: dict[tuple[str, int], dict[str, RenderJob]] = {}
    for job in plan.jobs:
        if job.key in usable:
            out.setdefault((job.row_key, job.variant), {})[job.aspect] = job
    return out


def variant_verdict(jobs: Sequence[RenderJob], results: Mapping[str, QAResult]) -> str:
    """An asset variant is as good as its worst render: fail > review > pass."""
    verdicts = {results[j.key].verdict if j.key in results else "review" for j in jobs}
    for verdict in ("fail", "review"):
        if verdict in verdicts:
            return verdict
    return "pass"
