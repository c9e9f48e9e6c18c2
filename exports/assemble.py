"""Where inputs live, and what export needs of a plan and its approvals (the asset snapshot,
export items). Plain functions, unit-tested without Prefect; the flows call them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exports.placements import Placement, load_placements
from plan.errors import InputError, Problem, closest
from plan.jobs import RenderJob
from plan.planner import CampaignPlan, PlanSettings, banned_terms_for
from plan.styles import DEFAULT_MAX_UPSCALE, Style
from render.registry import model_family, pinning_problem
from settings import load_settings
from store.documents import AssetRecord, AssetSnapshot, UpscalerRecord, read_document, write_document
from store.keys import assets_key

if TYPE_CHECKING:  # export and the review queue are imported where they are used: planning does without them
    from exports.stage import ExportItem
    from review.queue import ApprovedVariant, ReviewQueue
    from store import Store

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Paths:
    styles: Path
    templates: Path
    placements_file: Path | None


def resolve_paths(styles: str | None = None, placements_file: str | None = None) -> Paths:
    """``--styles`` (or $BRANDBATCH_STYLES), else ./styles, else the project's own styles."""
    settings = load_settings()

    def pick(explicit: str | Path | None, name: str) -> Path:
        if explicit:
            return Path(explicit)
        local = Path.cwd() / name
        return local if local.is_dir() else REPO_ROOT / name

    extra = placements_file or settings.placements
    return Paths(
        styles=pick(styles or settings.styles, "styles"),
        templates=pick(settings.templates, "templates") / "prompts",
        placements_file=Path(extra) if extra else None,
    )


def styles_dir(paths: Paths) -> Path:
    """The style library folder of ``paths``; InputError naming it when it is not a folder (a
    mistyped ``--styles`` would otherwise make every style of a sheet "unknown")."""
    if not paths.styles.is_dir():
        raise InputError([Problem(str(paths.styles), "the style library folder does not exist (named by --styles "
                                                     "or $BRANDBATCH_STYLES; default ./styles, else the bundled styles)",
                                  code="file_not_found")])
    return paths.styles


def plan_settings(styles: str | None = None, *, allow_draft: bool = False, model: str | None = None,
                  placements_file: str | None = None) -> tuple[PlanSettings, dict[str, Placement]]:
    """Everything planning needs, for ``validate`` and ``run`` alike."""
    paths = resolve_paths(styles, placements_file)
    styles_dir(paths)
    placements = load_placements(paths.placements_file)
    settings = PlanSettings(
        styles_dir=paths.styles, templates_dir=paths.templates,
        placements={p.id: (p.width, p.height) for p in placements.values()},
        allow_draft=allow_draft, model_override=model, model_pin_problem=pinning_problem, model_family=model_family,
    )
    return settings, placements


def asset_snapshot(plan: CampaignPlan, styles_dir: Path) -> AssetSnapshot:
    """What export needs of each planned row (placements, alt text, overlay text, the style's
    overlay look, focal hint, logo, upscale limit and upscaler), so that ``brandbatch export`` works later without the
    sheet. Files are recorded as absolute paths: a sheet's ``logo`` column is relative to the
    sheet's folder and wins over the style's ``logo``; a style's files are relative to its folder.
    Stable bytes for stable input."""
    assets = {}
    for row in plan.rows:
        style, folder = row.style, Path(styles_dir) / row.style.name
        overlay = style.overlay.model_dump(exclude_none=True)
        if "font" in overlay:
            overlay["font"] = str((folder / overlay["font"]).resolve())
        logo = None
        if row.cells.get("logo"):
            logo = plan.sheet.parent / row.cells["logo"]
        elif style.logo:
            logo = folder / style.logo
        upscaler = None
        if style.upscaler is not None:
            upscaler = UpscalerRecord(id=style.upscaler.id, sha256=style.upscaler.sha256,
                                      path=None if style.upscaler.sha256 is None else str(style.upscaler.path(folder)))
        assets[row.asset_id] = AssetRecord(
            row=row.row, placements=list(row.placements), alt_text=row.alt_text,
            headline=row.cells.get("headline", ""), cta=row.cells.get("cta", ""), locale=row.cells.get("locale", ""),
            overlay=overlay, focal=tuple(style.focal) if style.focal else None,
            logo=str(logo.resolve()) if logo else "", max_upscale=style.max_upscale, upscaler=upscaler,
        )
    return AssetSnapshot(assets=dict(sorted(assets.items())))


def save_assets(store: Store, campaign: str, snapshot: AssetSnapshot) -> None:
    write_document(store, assets_key(campaign), snapshot)


def load_assets(store: Store, campaign: str) -> dict[str, AssetRecord]:
    key = assets_key(campaign)
    try:
        return dict(read_document(store, key, AssetSnapshot).assets)
    except FileNotFoundError:
        raise FileNotFoundError(f"no campaign {campaign!r} in {store.root}: run `brandbatch run` first "
                                f"({key} is missing)") from None


def missing_campaign(store: Store, out: str, campaign: str) -> str | None:
    """One line when ``out`` has no campaign ``campaign`` (no asset snapshot, and no run of it
    holds its lock: a first run may be under way), naming the closest campaigns the review queue
    knows ("did you mean"); None when it is there."""
    from review.queue import ReviewQueue
    from store.locks import lock_taken

    if store.exists(assets_key(campaign)) or lock_taken(store, campaign):
        return None
    queue = ReviewQueue.for_out(out)
    try:
        known = [name for name in queue.campaigns() if store.exists(assets_key(name))]
    finally:
        queue.close()
    close = closest(campaign, known)
    hint = (f"; did you mean {' or '.join(close)}?" if close else
            f"; campaigns there: {', '.join(sorted(known))}" if known else "; run `brandbatch run SHEET` first")
    return f"no campaign {campaign!r} in {store.root}{hint}"


def banned_checker(styles_dir: Path, styles: Mapping[str, Style] | None = None
                   ) -> Callable[[RenderJob], tuple[str, ...]]:
    """job -> the banned terms of its style version as they are now (read once per style);
    ``styles``: the style versions this run already read, by ref (``name@version``): their
    files are not read again (the brand's banned-terms files are)."""
    cache: dict[tuple[str, int], tuple[str, ...]] = {}
    known = styles or {}

    def banned(job: RenderJob) -> tuple[str, ...]:
        ref = (job.style, job.style_version)
        if ref not in cache:
            cache[ref] = banned_terms_for(styles_dir, job.style, job.style_version,
                                          known.get(f"{job.style}@{job.style_version}"))
        return cache[ref]
    return banned


def export_items(campaign: str, approved: Sequence[ApprovedVariant], assets: Mapping[str, AssetRecord]
                 ) -> list[ExportItem]:
    """Export items for approved variants of assets still in the campaign's latest plan, with the
    copy designers edited in review (``overrides``) in place of the sheet's, and the placements
    they rejected set apart (``rejected``: not exported, their earlier files withdrawn)."""
    from exports.overlay import OverlayStyle
    from exports.stage import ExportItem
    from render.upscale import upscaler_spec

    items = []
    for variant in sorted(approved, key=lambda v: (v.asset_id, v.variant)):
        asset = assets.get(variant.asset_id)
        if asset is None:
            continue  # the row left the sheet since it was approved
        edited = {name: edit["after"] for name, edit in variant.overrides.items()}
        rejected = {pid: rejection_reason(variant.rejected_placements[pid])
                    for pid in asset.placements if pid in variant.rejected_placements}
        items.append(ExportItem(
            campaign=campaign, asset_id=variant.asset_id, row=asset.row, variant=variant.variant,
            placements=tuple(p for p in asset.placements if p not in rejected), renders=dict(variant.jobs),
            qa_verdict=variant.qa_verdict, approval_id=variant.approval_id, approved_by=variant.approved_by,
            alt_text=edited.get("alt_text", asset.alt_text), headline=edited.get("headline", asset.headline),
            cta=edited.get("cta", asset.cta), locale=asset.locale, logo=asset.logo, focal=asset.focal,
            overlay=OverlayStyle.from_settings(asset.overlay),
            max_upscale=DEFAULT_MAX_UPSCALE if asset.max_upscale is None else asset.max_upscale,
            upscaler=upscaler_spec(up.id, up.path, up.sha256) if (up := asset.upscaler) else None,
            rejected=rejected, overrides=variant.overrides,
        ))
    return items


def export_approved(campaign: str, queue: ReviewQueue, store: Store, placements: dict[str, Placement],
                    formats: Sequence[str], styles_dir: Path, streamed: Mapping | None = None,
                    styles: Mapping[str, Style] | None = None) -> list[dict]:
    """Export the variants of ``campaign`` approved in ``queue`` (reusing files already current),
    write its manifests and hold for review the variants whose overlays would be illegible; the
    manifest rows. ``streamed``: what ``pipeline.stream`` exported during rendering
    (``StreamedExports``), taken where the item is the same; ``styles``: the style versions the
    run already read (by ref)."""
    from exports.stage import export_assets, held_for_review, refuse_banned_text, write_manifests
    from review.queue import item_id_for

    queue.verify(campaign)  # lost decisions stop the export (ReviewStateLost)
    approved = queue.approved(campaign)
    items, refused = refuse_banned_text(export_items(campaign, approved, load_assets(store, campaign)),
                                        banned_checker(styles_dir, styles))
    todo, reused, stale = list(items), [], []
    if streamed:  # (pipeline.stream is imported only then: `brandbatch export` stays quick)
        from pipeline.stream import take_streamed_rows

        todo, reused, stale = take_streamed_rows(items, streamed)
    for path in stale:  # written while rendering for an approval that changed since
        store.delete(path)
    rows = sorted(export_assets(todo, store, placements, formats=formats) + reused, key=lambda r: r["path"]) + refused
    write_manifests(store, campaign, rows, approved={(i.asset_id, i.variant) for i in items})
    for (asset_id, variant), reasons in held_for_review(rows).items():
        queue.hold_for_review(item_id_for(campaign, asset_id, variant), reasons)
    return rows


def rejection_reason(rejection: Mapping[str, str]) -> str:
    """A placement rejection as one line: 'rejected by dana: text_too_small (headline 3 px)'."""
    note = f" ({rejection['note']})" if rejection.get("note") else ""
    return f"rejected by {rejection.get('by', '?')}: {rejection.get('reason', '?')}{note}"
