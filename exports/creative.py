"""A review item as the creative that ships: what the review app shows and checks, made by the
export code (``exports.assemble.export_items`` builds the export item with the designers' copy
edits and rejected placements, ``exports.preview`` draws each placement), and the checks a copy
edit must pass before it is stored: the sheet's length limit, the style's banned terms (as
``refuse_banned_text`` checks them again at export) and the fonts (a glyph no font of its
script has would be a tofu box, as ``brandbatch validate`` reports for the sheet).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from exports.assemble import export_items, load_assets
from exports.manifest import read_manifest
from exports.placements import Placement
from exports.preview import PlacementPreview, placement_preview, placement_previews
from exports.stage import ExportItem
from exports.typeset import choose_face
from plan.jobs import RenderJob
from plan.planner import shipped_text_problems
from plan.sheet import MAX_CELL_CHARS
from review.queue import COPY_FIELDS, ApprovedVariant, Item
from store.base import Store

Banned = Callable[[RenderJob], Sequence[str]]  # job -> its style's banned terms now (exports.assemble.banned_checker)


@dataclass(frozen=True)
class Creative:
    """One review item as it ships; ``problem`` says why there is nothing to draw (then
    ``export`` is None)."""

    export: ExportItem | None
    previews: list[PlacementPreview] = field(default_factory=list)
    sheet: Mapping[str, str] = field(default_factory=dict)  # field -> the sheet's text
    problem: str = ""

    @property
    def shipped(self) -> dict[str, str]:
        """field -> the text that ships (a designer's edit, else the sheet's)."""
        if self.export is None:
            return {}
        return {"headline": self.export.headline, "cta": self.export.cta, "alt_text": self.export.alt_text}


def _export_item(item: Item, store: Store) -> tuple[ExportItem | None, list[str], dict[str, str], str]:
    """(export item with every placement, sheet order of placements, the sheet's copy, problem)."""
    try:
        asset = load_assets(store, item.campaign).get(item.asset_id)
    except (FileNotFoundError, ValueError) as exc:
        return None, [], {}, f"no previews: {exc}"
    if asset is None:
        return None, [], {}, f"{item.asset_id} is no longer in the campaign's sheet: nothing of it ships"
    (export,) = export_items(item.campaign, [ApprovedVariant.of(item)], {item.asset_id: asset})
    sheet = {"headline": asset.headline, "cta": asset.cta, "alt_text": asset.alt_text}
    return export, list(asset.placements), sheet, ""


def placements_of(item: Item, store: Store) -> list[str]:
    """The placements of the item's sheet row (none when the campaign's assets are not known)."""
    return _export_item(item, store)[1]


def creative_of(item: Item, store: Store, placements: Mapping[str, Placement]) -> Creative:
    """``item`` as it ships: a preview of every placement (rejected ones marked) with its weight
    and warnings, and its copy."""
    export, order, sheet, problem = _export_item(item, store)
    if export is None:
        return Creative(None, problem=problem)
    if not placements:
        return Creative(export, [], sheet)
    try:
        manifest = read_manifest(store, item.campaign)
    except ValueError:
        manifest = {}  # not a manifest: the export says so; the previews show estimates
    return Creative(export, placement_previews(export, placements, order, store, manifest, item.rejected_placements),
                    sheet)


def hero_preview(item: Item, store: Store, placements: Mapping[str, Placement]) -> PlacementPreview | None:
    """The preview of the item's hero placement (the first of its sheet row that is not rejected,
    else the first); None when there is nothing to draw."""
    export, order, _sheet, _problem = _export_item(item, store)
    known = [pid for pid in order if pid in placements]
    if export is None or not known:
        return None
    pid = next((p for p in known if p not in item.rejected_placements), known[0])
    preview = placement_preview(export, placements[pid], store, weigh=False)
    return preview if preview.digest else None


def copy_edit_problems(item: Item, field_name: str, value: str, banned: Banned,
                       export: ExportItem | None) -> list[str]:
    """Why ``value`` cannot be ``field_name`` (headline, cta, alt_text) of ``item``: each problem
    names the field, the value and what is allowed. ``banned``: the style's banned terms now;
    ``export``: the item as it ships (its overlay style and locale pick the fonts)."""
    if field_name not in COPY_FIELDS:
        return [f"field {field_name!r} cannot be edited in review; allowed: {', '.join(COPY_FIELDS)}"]
    shown = value if len(value) <= 60 else value[:57] + "..."
    problems = []
    if len(value) > MAX_CELL_CHARS:
        problems.append(f"{field_name} {shown!r} is {len(value)} characters; at most {MAX_CELL_CHARS} are allowed "
                        "(the sheet's limit)")
    if field_name == "alt_text" and not value.strip():
        problems.append("alt_text must not be empty: platforms read it out to people who cannot see the ad")
    job = next(iter(item.jobs.values()), None)
    try:
        terms = banned(job) if job is not None else ()
        problems += [f"{problem} in {shown!r}; allowed: text without the banned terms of style "
                     f"{item.style}@{item.style_version}" for problem in shipped_text_problems({field_name: value}, terms)]
    except ValueError as exc:  # the style cannot be read now: its terms cannot be checked, fail closed
        problems.append(f"{field_name}: banned terms of style {item.style}@{item.style_version} cannot be checked "
                        f"({exc}); nothing was changed")
    if field_name in ("headline", "cta") and value.strip() and export is not None:
        try:
            face, why = choose_face(" ".join(value.split()), export.overlay.font, export.overlay.weight, export.locale)
        except OSError as exc:
            face, why = None, f"the style's font cannot be read: {exc}"
        if face is None:
            problems.append(f"{field_name} {shown!r}: {why}; allowed: characters the style's fonts have")
    return problems


__all__ = ["Creative", "copy_edit_problems", "creative_of", "hero_preview", "placements_of"]
