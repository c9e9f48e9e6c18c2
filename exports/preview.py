"""Review previews: every placement of a creative as it will ship, drawn by the export code.

A preview is the image ``exports.stage`` would encode for the placement (the same source
choice, crop around the focal point, Lanczos fit, headline, CTA and logo in the safe zone, in
the locale's fonts: ``stage._draw``), scaled down to fit ``PREVIEW_SIDE`` pixels with Lanczos
(:func:`at_preview_scale`). So a preview equals the export file decoded and scaled the same way:
exactly for a PNG export (lossless), within the codec's error for WebP/AVIF/JPEG.

Previews are stored content-addressed by the export's pixel parts (``exports.fingerprint.
pixel_parts``: render, size, safe zone, copy, logo, overlay style, crop) and the preview size,
so one is drawn again only when something that shapes its pixels changed (a copy edit, a
reroll, a new logo), never for an approval or a new signing key. Beside each preview a
``PreviewRecord`` keeps what its file would weigh (an unsigned encode in the placement's upload
format, within its byte cap) for the page to show until a real export of those pixels exists.

The review server never runs a model: a placement whose export needs the style's upscaler
first is previewed from the upscaled copy when an export made one already, otherwise from the
plain render, and says so.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from PIL import Image

from exports.encode import ByteCapError, encode
from exports.fingerprint import PIXEL_PARTS, export_fingerprint, pixel_parts
from exports.fit import nearest_render, upscale_factor
from exports.overlay import overlay_problems
from exports.placements import Placement, sized_for, unknown_placement
from exports.stage import (ExportItem, _draw, _Inputs, _read_inputs, ensure_upscaled, needs_model_upscale,
                           pixel_inputs)
from plan.jobs import RenderJob
from store import keys
from store.base import Store
from store.documents import PreviewRecord, read_document, write_document

PREVIEW_SIDE = 480  # a preview's longer side, in pixels (never larger than the file itself)


def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """The size of the preview of a ``width`` x ``height`` file: scaled down (never up) so that
    its longer side is ``side``, each side rounded, at least 1."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def at_preview_scale(image: Image.Image, side: int = PREVIEW_SIDE) -> Image.Image:
    """``image`` (an export as drawn, or an export file decoded) at preview scale: RGB, resized
    to :func:`preview_size` with Lanczos over the whole image. "The same scale" means this."""
    rgb = image.convert("RGB")
    size = preview_size(*rgb.size, side=side)
    return rgb if size == rgb.size else rgb.resize(size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class ExportedFile:
    format: str
    bytes: int
    path: str


@dataclass(frozen=True)
class PlacementPreview:
    """One placement of a creative as it will ship."""

    placement: str
    name: str = ""
    width: int = 0  # of the file (an any-size placement takes its render's shape)
    height: int = 0
    cap: int | None = None  # the platform's byte cap (None: none stated)
    digest: str = ""  # names the preview image (``keys.preview_key``); "" when it could not be drawn
    preview: tuple[int, int] = (0, 0)
    safe_zone: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # top, right, bottom, left: share of the side
    files: tuple[ExportedFile, ...] = ()  # exports of exactly these pixels (from the manifest)
    estimate: PreviewRecord | None = None  # what the file would weigh, while no export exists
    warnings: tuple[str, ...] = ()
    held: bool = False  # export holds this file for review (text or logo illegible, CTA dropped)
    rejection: Mapping[str, str] | None = None  # a designer's rejection of this placement
    error: str = ""  # why nothing could be drawn

    @property
    def over_cap(self) -> bool:
        sizes = [f.bytes for f in self.files] or ([self.estimate.estimate_bytes] if self.estimate and
                                                  self.estimate.estimate_bytes else [])
        return self.cap is not None and any(size > self.cap for size in sizes)


@dataclass
class _Sources:
    """Inputs read once per render, for every placement cut from it."""

    inputs: dict[str, _Inputs] = field(default_factory=dict)

    def get(self, item: ExportItem, job: RenderJob, store: Store) -> _Inputs:
        if job.key not in self.inputs:
            self.inputs[job.key] = _read_inputs(item, job, store, overlays=True)
        return self.inputs[job.key]


def _source(item: ExportItem, job: RenderJob, placement: Placement, inputs: _Inputs, store: Store
            ) -> tuple[str, tuple[int, int], str, list[str]]:
    """(store key, size, upscaler tag or "", warnings) of the source the export cuts ``placement``
    from; the upscaler's copy only when an export made it already (the server runs no model)."""
    source, size = keys.render_key(job.key), (job.width, job.height)
    if not needs_model_upscale(item, job, placement):
        return source, size, "", []
    tag = item.upscaler.tag
    if not store.exists(keys.upscaled_key(inputs.render_sha256, tag)):
        return source, size, "", [f"previewed from the render without the upscaler {tag}: the export runs it "
                                  "first, so the shipped file is sharper than this"]
    key, size = ensure_upscaled(store, job, item.upscaler)
    return key, size, tag, []


def placement_preview(item: ExportItem, placement: Placement, store: Store, *, sources: _Sources | None = None,
                      exported: Iterable[Mapping] = (), rejection: Mapping[str, str] | None = None,
                      weigh: bool = True) -> PlacementPreview:
    """The preview of ``item`` in ``placement`` (made and stored the first time); ``exported``:
    the manifest rows of this item and placement (files whose pixel parts match are listed);
    ``weigh``: estimate the file's bytes while no such file exists (False: ``estimate`` None)."""
    sources = sources or _Sources()
    if not item.renders:
        return PlacementPreview(placement.id, placement.name, rejection=rejection,
                                error=f"no render of {item.asset_id} v{item.variant}")
    job = nearest_render(item.renders, placement)
    sized = sized_for(placement, (job.width, job.height))
    zone = sized.safe_zone
    common = {"placement": placement.id, "name": placement.name, "width": sized.width, "height": sized.height,
              "cap": sized.max_bytes, "rejection": rejection,
              "safe_zone": (zone.top / sized.height, zone.right / sized.width, zone.bottom / sized.height,
                            zone.left / sized.width)}
    try:
        inputs = sources.get(item, job, store)
        source, source_size, upscaler, warnings = _source(item, job, sized, inputs, store)
        held = overlay_problems(sized, headline=item.headline, cta=item.cta,
                                logo_size=inputs.logo.size if inputs.logo else None, style=item.overlay,
                                locale=item.locale) if inputs.overlay is not None else []
    except (ValueError, OSError) as exc:
        return PlacementPreview(**common, error=str(exc))
    factor = upscale_factor(source_size, sized.width, sized.height)
    if factor > item.max_upscale:
        warnings.append(f"enlarged {factor:.2f}x from its source, above the style's max_upscale of "
                        f"{item.max_upscale:g}x: it will look soft")
    warnings += [f"held at export (not shipped until fixed): {problem}" for problem in held]
    pixels = pixel_parts(**pixel_inputs(item, job, sized, inputs, upscaler))
    digest = export_fingerprint({**pixels, "preview": str(PREVIEW_SIDE)})
    files = tuple(ExportedFile(str(row["format"]), int(row["bytes"]), str(row["path"])) for row in exported
                  if row.get("status") == "exported" and
                  all((row.get("export_inputs") or {}).get(name) == pixels[name] for name in PIXEL_PARTS))
    try:
        record = _ensure_preview(item, job, sized, inputs, store, source, digest, weigh and not files)
    except ValueError as exc:
        return PlacementPreview(**common, warnings=tuple(warnings), held=bool(held), error=str(exc))
    return PlacementPreview(**common, digest=digest, preview=preview_size(sized.width, sized.height), files=files,
                            estimate=None if files else record, warnings=tuple(warnings), held=bool(held))


def _ensure_preview(item: ExportItem, job: RenderJob, placement: Placement, inputs: _Inputs, store: Store,
                    source: str, digest: str, weigh: bool) -> PreviewRecord | None:
    """Draw and store the preview unless stored already, and with ``weigh`` its record (the
    estimate costs encodes at full size: the grid's hero previews skip it). Raises ``ValueError``."""
    record = None
    if weigh:
        try:
            record = read_document(store, keys.preview_record_key(digest), PreviewRecord)
        except (FileNotFoundError, ValueError):
            pass  # not weighed yet, or the record was torn: weigh it
    drawn = store.exists(keys.preview_key(digest))
    if drawn and (record is not None or not weigh):
        return record
    image = _draw(item, job, placement, inputs, store, source)
    if weigh:
        fmt = placement.upload_formats[0]
        try:
            estimate, error = len(encode(image, fmt, max_bytes=placement.max_bytes, xmp=b"").data), ""
        except ByteCapError as exc:
            estimate, error = None, str(exc)
        record = PreviewRecord(width=placement.width, height=placement.height, estimate_format=fmt,
                               estimate_bytes=estimate, estimate_error=error)
        write_document(store, keys.preview_record_key(digest), record)
    if not drawn:
        buffer = io.BytesIO()
        at_preview_scale(image).save(buffer, "PNG")
        store.put(keys.preview_key(digest), buffer.getvalue(), content_type="image/png", overwrite=True)
    return record


def placement_previews(item: ExportItem, placements: Mapping[str, Placement], order: Sequence[str], store: Store,
                       manifest: Mapping[str, Mapping] | None = None,
                       rejected: Mapping[str, Mapping[str, str]] | None = None) -> list[PlacementPreview]:
    """The previews of ``item`` in each placement of ``order`` (the sheet's order, rejected ones
    included, with their ``rejected`` record); ``manifest``: the campaign's rows by path."""
    rows = [r for r in (manifest or {}).values() if r.get("asset_id") == item.asset_id
            and r.get("variant") == item.variant]
    sources, out = _Sources(), []
    for pid in order:
        rejection = (rejected or {}).get(pid)
        if pid not in placements:
            out.append(PlacementPreview(pid, rejection=rejection, error=unknown_placement(pid, placements)))
            continue
        out.append(placement_preview(item, placements[pid], store, sources=sources, rejection=rejection,
                                     exported=[r for r in rows if r.get("placement") == pid]))
    return out


__all__ = ["PREVIEW_SIDE", "ExportedFile", "PlacementPreview", "at_preview_scale", "placement_preview",
           "placement_previews", "preview_size"]
