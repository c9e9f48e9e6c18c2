"""Export stage: approved asset variants -> one file per placement x format, plus manifest rows.

Files go to ``<campaign>/exports/<placement-id>/<asset_id>[-v<variant>].<ext>``. A file whose
export fingerprint (``exports.fingerprint``: render bytes, placement spec, copy, logo, overlay
style, crop, encoder) is unchanged since the manifest recorded it, and whose bytes still verify,
is not encoded again (resume); its manifest row is rebuilt from the stored bytes, so a rerun
gives the same manifest. Any other file is written again, and its row says why. A file that
cannot be made (render missing, byte cap unreachable) gets a row with ``status: failed`` and the
reason, and the rest carry on.
Work is spread over a process pool in tasks of (item, render, placements cut from that render),
so each render is decoded once per task; results equal serial ones.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from PIL import Image, UnidentifiedImageError

from exports.credentials import Credential, load_credential
from exports.encode import CONTENT_TYPES, EXTENSIONS, FORMATS, ByteCapError, encode
from exports.fingerprint import changed_parts, export_fingerprint, fingerprint_parts, overlay_identity, sha256_hex
from exports.fit import cover_fit, crop_box, focal_point, nearest_render, upscale_factor
from exports.logo import LogoError, load_logo, read_logo
from exports.manifest import MANIFEST_FIELDS, read_manifest, write_manifests
from exports.metadata import xmp_packet
from exports.overlay import OverlayStyle, apply_overlays, learn_text_layouts, overlay_problems, text_layouts
from exports.placements import Placement, sized_for, unknown_placement
from exports.product import composite, fitted_layer, product_problem, read_product
from exports.provenance import Provenance, SigningError, sign, verify
from plan.jobs import RenderJob
from plan.planner import shipped_text_problems
from plan.styles import DEFAULT_MAX_UPSCALE
from plan.uploads import UploadError
from render.stage import verified_render
from render.upscale import UpscalerError, UpscalerSpec
from settings import load_settings
from store import keys
from store.base import Store
from store.keys import render_key as render_source_key  # export_render's ``keys`` are its files

RUN_FORMATS = (*FORMATS, "upload")  # "upload": the placement's first accepted upload format
DEFAULT_FORMATS = ("webp", "avif", "upload")
FORMAT_ALIASES = {"jpg": "jpeg"}  # what files are named, and what users type


def run_formats(names: Sequence[str]) -> list[str]:
    """``names`` as export formats: case folded, aliases (``jpg``) resolved, repeats dropped;
    ValueError naming what is allowed when one is not an export format."""
    chosen = list(dict.fromkeys(FORMAT_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in names if n.strip()))
    bad = [f for f in chosen if f not in RUN_FORMATS]
    if bad or not chosen:
        raise ValueError(f"formats must be some of {', '.join(RUN_FORMATS)} but are {list(names)!r} (jpg means jpeg)")
    return chosen


@dataclass(frozen=True)
class ExportItem:
    """One approved variant of one sheet row, with its renders by aspect ratio."""

    campaign: str
    asset_id: str
    row: int
    variant: int
    placements: tuple[str, ...]
    renders: Mapping[str, RenderJob]  # aspect -> job
    qa_verdict: str
    approval_id: str
    approved_by: str
    alt_text: str
    headline: str = ""
    cta: str = ""
    logo: str = ""  # path of a logo image (PNG/JPEG/WebP, alpha kept) to composite; "" for none
    focal: tuple[float, float] | None = None  # the style's focal hint (x, y as 0..1); None: saliency
    overlay: OverlayStyle = OverlayStyle()  # the style's look for headline, CTA and logo
    locale: str = ""  # BCP 47 language of the headline and CTA ("" unknown)
    max_upscale: float = DEFAULT_MAX_UPSCALE  # the style's: more enlargement uses ``upscaler`` first
    upscaler: UpscalerSpec | None = None  # the style's super-resolution model; None: resample only
    rejected: Mapping[str, str] = field(default_factory=dict)  # placement -> why a designer kept it from shipping
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # copy edited in review, by field


def export_key(item: ExportItem, placement_id: str, fmt: str) -> str:
    return keys.export_key(item.campaign, placement_id, item.asset_id, item.variant, EXTENSIONS[fmt])


def _formats_for(formats: Sequence[str], placement: Placement) -> list[str]:
    resolved = (placement.upload_formats[0] if f == "upload" else f for f in formats)
    return list(dict.fromkeys(resolved))


def _base_row(item: ExportItem, placement: Placement, job: RenderJob | None) -> dict:
    return {
        "asset_id": item.asset_id, "row": item.row, "variant": item.variant, "placement": placement.id,
        "platform": placement.platform, "width": placement.width, "height": placement.height,
        "seed": job.seed if job else None, "style": job.style if job else "",
        "style_version": job.style_version if job else None, "model": job.model_id if job else "",
        "model_revision": job.model_revision if job else None, "job_key": job.key if job else "",
        "master_job_key": (job.master_key or "") if job else "", "prompt_sha256": job.prompt_sha256 if job else "", "qa_verdict": item.qa_verdict,
        "approval_id": item.approval_id, "approved_by": item.approved_by, "alt_text": item.alt_text,
        "headline": item.headline, "cta": item.cta, "locale": item.locale, "upscale": None, "upscale_flagged": False,
        "max_upscale": item.max_upscale, "upscaler": "", "upscaler_factor": None,
        "input_images": ";".join(f"{c}={h}" for c, h in job.input_images or ()) if job else "",
    } | ({"overrides": _overrides(item)} if item.overrides else {})


def _overrides(item: ExportItem) -> dict[str, dict[str, str]]:
    """The copy edits of ``item`` as its manifest rows show them: ``{field: {before, after, by}}``."""
    return {name: {k: str(edit.get(k, "")) for k in ("before", "after", "by")}
            for name, edit in sorted(item.overrides.items())}


def _file_row(base: dict, fmt: str, key: str, data: bytes, credential: str,
              size: tuple[int, int] | None = None, sha256: str | None = None) -> dict:
    """The row of a file in the store, signed with a ``credential`` of that kind (development or
    configured); ``size`` and ``sha256``: its pixel size and digest if known, else read from ``data``."""
    if size is None:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    return {**base, "format": fmt, "path": key, "width": size[0], "height": size[1], "bytes": len(data),
            "sha256": sha256 or sha256_hex(data), "c2pa_credential": credential, "status": "exported", "error": ""}


def _recorded(previous: dict | None, fingerprint: str) -> dict:
    """What its manifest row says of a stored file kept for ``fingerprint``, as ``_file_row``'s
    ``size`` and ``sha256`` (``_stale`` kept it for that row only if its bytes hash to the row's
    sha256); {} when the row is not of this file."""
    if previous is None or previous.get("status") != "exported" or previous.get("export_fingerprint") != fingerprint:
        return {}
    size = previous.get("width"), previous.get("height")
    return {"sha256": previous.get("sha256"),
            "size": size if all(isinstance(n, int) and n > 0 for n in size) else None}


def _held_row(base: dict, fmt: str, key: str, reason: str) -> dict:
    """A file not made because its overlays would be illegible: the item goes back to review."""
    return {**base, "format": fmt, "path": key, "bytes": 0, "sha256": "", "c2pa_credential": "", "status": "review",
            "error": reason, "export_fingerprint": "", "rewritten": ""}


def _failed_row(base: dict, fmt: str, key: str, reason: str) -> dict:
    return {**base, "format": fmt, "path": key, "bytes": 0, "sha256": "", "c2pa_credential": "", "status": "failed",
            "error": reason, "export_fingerprint": "", "rewritten": ""}


def _signed_with(data: bytes, fmt: str) -> str:
    """The kind of credential a stored file is validly signed with; "" if its C2PA manifest is
    missing or invalid (the file is then made again)."""
    check = verify(data, fmt)
    return ("development" if check.development else "configured") if check.valid else ""


def _has_overlays(item: ExportItem, overlays: bool) -> bool:
    return overlays and bool(item.headline.strip() or item.cta.strip() or item.logo)


@dataclass
class _Inputs:
    """What every placement cut from one render needs: the render's and logo's bytes (read
    once, hashed for the fingerprint), the decoded logo, the overlay's identity; the render is
    decoded only when a file is drawn."""

    render: bytes
    render_sha256: str
    logo: Image.Image | None
    logo_sha256: str | None
    overlay: dict[str, object] | None  # None: nothing is drawn over the render
    product: tuple[Image.Image, tuple[int, int, int, int]] | None  # packshot, its box in the render
    decoded: dict[str, tuple[Image.Image, tuple[float, float]]] = field(default_factory=dict)  # by source key


def _read_inputs(item: ExportItem, job: RenderJob, store: Store, overlays: bool) -> _Inputs:
    """Raises ``ValueError`` with the reason when an input is missing or unreadable."""
    try:
        render = verified_render(store, job.key)  # ValueError when it is not the render that was made
    except (FileNotFoundError, KeyError):
        raise ValueError(f"render {keys.render_key(job.key)} is not in the store") from None
    logo, logo_sha256, overlay = None, None, None
    if _has_overlays(item, overlays):
        try:
            overlay = overlay_identity(item.overlay, (item.headline, item.cta), item.locale)
        except OSError as exc:  # the style's font file cannot be read
            raise ValueError(f"overlay font {item.overlay.font} of {item.asset_id} cannot be used: {exc}") from None
        if item.logo:
            try:
                data = read_logo(item.logo)
                logo, logo_sha256 = load_logo(item.logo, data), sha256_hex(data)
            except LogoError as exc:
                raise ValueError(f"{exc} (asset {item.asset_id})") from None
    try:
        product = read_product(job, item.renders, store)
    except UploadError as exc:
        raise ValueError(f"{exc} (asset {item.asset_id})") from None
    return _Inputs(render, sha256_hex(render), logo, logo_sha256, overlay, product)


def needs_model_upscale(item: ExportItem, job: RenderJob, placement: Placement) -> bool:
    """Whether the placement enlarges the render more than the style allows and the style names
    an upscaler (never at or below ``max_upscale``)."""
    return item.upscaler is not None and \
        upscale_factor((job.width, job.height), placement.width, placement.height) > item.max_upscale


def ensure_upscaled(store: Store, job: RenderJob, upscaler: UpscalerSpec) -> tuple[str, tuple[int, int]]:
    """(store key, size) of the job's render upscaled by ``upscaler``, made and stored the first
    time (content-addressed by the render's bytes and the weights, written once) and reused
    after. Raises ``ValueError`` with the reason."""
    from render.stage import encode_png
    from render.upscale import upscale

    try:
        data = store.get(keys.render_key(job.key))
    except FileNotFoundError:
        raise ValueError(f"render {keys.render_key(job.key)} is not in the store") from None
    key = keys.upscaled_key(sha256_hex(data), upscaler.tag)
    stored = _stored(store, key)
    if stored is None:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image, _scale = upscale(opened.convert("RGB"), upscaler)
        except UpscalerError as exc:
            raise ValueError(f"upscaling {keys.render_key(job.key)}: {exc}") from None
        stored = encode_png(np.asarray(image))
        store.put(key, stored, content_type="image/png")
    with Image.open(io.BytesIO(stored)) as opened:
        return key, opened.size


# The sources this process decoded last, with their focal points: the tasks of one render follow
# each other in the queue (``_run_shared``), so a process decodes a render about once, not once
# per task. Only read (fitting makes a new image); emptied when an export ends.
_RECENT: OrderedDict[tuple, tuple[Image.Image, tuple[float, float]]] = OrderedDict()
_RECENT_SIZE = 2
_RECENT_LOCK = threading.Lock()


def _decoded(item: ExportItem, job: RenderJob, inputs: _Inputs, store: Store,
             source: str) -> tuple[Image.Image, tuple[float, float]]:
    """The decoded source (the render, or its upscaled copy at store key ``source``) and its focal
    point, made once per task (or taken from ``_RECENT``). Raises ``ValueError``."""
    if source not in inputs.decoded:
        recent = (source, inputs.render_sha256, job.width, job.height,
                  None if item.focal is None else tuple(item.focal),
                  None if inputs.product is None else tuple(inputs.product[1]))
        with _RECENT_LOCK:
            if recent in _RECENT:
                _RECENT.move_to_end(recent)
                inputs.decoded[source] = _RECENT[recent]
                return inputs.decoded[source]
        try:
            data = inputs.render if source == render_source_key(job.key) else store.get(source)
            with Image.open(io.BytesIO(data)) as opened:
                render = opened.convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{source} cannot be decoded: {exc}") from None
        render.info = {}  # nothing of the render's metadata reaches an export
        if item.focal is not None:
            focal = item.focal
        elif inputs.product is not None:  # a packshot: crop around the product, not what looks salient
            left, top, right, bottom = inputs.product[1]
            focal = ((left + right) / 2 / job.width, (top + bottom) / 2 / job.height)
        else:
            focal = focal_point(render)
        inputs.decoded[source] = (render, focal)
        with _RECENT_LOCK:
            _RECENT[recent] = inputs.decoded[source]
            while len(_RECENT) > _RECENT_SIZE:
                _RECENT.popitem(last=False)
    return inputs.decoded[source]


def _forget_decoded() -> None:
    with _RECENT_LOCK:
        _RECENT.clear()


def _draw(item: ExportItem, job: RenderJob, placement: Placement, inputs: _Inputs, store: Store,
          source: str) -> Image.Image:
    """The source fitted to the placement, with the packshot composited again at its resolution
    (``exports.product``) and checked, then its overlays. Raises ``ValueError``, ``ProductHeld``."""
    render, focal = _decoded(item, job, inputs, store, source)
    fitted = cover_fit(render, placement.width, placement.height, focal)
    if inputs.product is not None:
        product, box = inputs.product
        scale_x, scale_y = render.width / job.width, render.height / job.height  # an upscaled source
        layer = fitted_layer(product, (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y),
                             crop_box(render.size, placement.width, placement.height, focal), fitted.size)
        fitted = composite(fitted, layer)
        if problem := product_problem(fitted, layer):
            raise ProductHeld(f"product fidelity in {placement.id}: {problem}")
    if inputs.overlay is None:
        return fitted
    try:
        return apply_overlays(fitted, placement, headline=item.headline, cta=item.cta, logo=inputs.logo,
                              style=item.overlay, locale=item.locale, in_place=True)[0]  # ``fitted`` is ours
    except OSError as exc:  # the style's font file cannot be read
        raise ValueError(f"overlay font {item.overlay.font} of {item.asset_id} cannot be used: {exc}") from None


def pixel_inputs(item: ExportItem, job: RenderJob, placement: Placement, inputs: _Inputs,
                 upscaler: str) -> dict[str, object]:
    """The arguments of ``exports.fingerprint.pixel_parts`` for one file (``upscaler``: the tag of
    the model its source was upscaled with, "" none): the export and its review preview share them."""
    drawn = inputs.overlay is not None
    return {"job_key": job.key, "render_sha256": inputs.render_sha256, "upscaler": upscaler or None,
            "placement": placement, "texts": (item.headline, item.cta, item.locale) if drawn else None,
            "logo_sha256": inputs.logo_sha256, "overlay": inputs.overlay,
            "crop": crop_box((job.width, job.height), placement.width, placement.height, item.focal)
            if item.focal is not None else None}


class ProductHeld(ValueError):
    """The product pixels of a file are not the packshot's: the file is not made (review)."""


def _stored(store: Store, key: str) -> bytes | None:
    try:
        return store.get(key)
    except FileNotFoundError:
        return None


def _stale(previous: dict | None, data: bytes | None, fmt: str, parts: dict[str, str], fingerprint: str,
           cap: int | None) -> tuple[str, str]:
    """(why the stored file ``data`` (None: none) with manifest row ``previous`` cannot be kept
    for ``fingerprint``, or "" if it can; the kind of credential it is signed with). A file
    counts when its row names this fingerprint and its bytes, re-verified, match the row's
    sha256 and fit the cap; without such a row (another run wrote it and has not written the
    manifest yet, or the manifest was torn), when its own XMP names this fingerprint, it
    decodes whole, its C2PA manifest is valid and it fits the cap."""
    if data is None:
        return "new file", ""
    fits = cap is None or len(data) <= cap
    if previous is not None and previous.get("status") == "exported" \
            and previous.get("export_fingerprint") == fingerprint:
        if sha256_hex(data) != previous.get("sha256"):
            return "file changed since export", ""
        return ("", previous.get("c2pa_credential", "")) if fits else ("over the cap", "")
    if fits and fingerprint.encode("ascii") in data and _decodes(data) and (signed := _signed_with(data, fmt)):
        return "", signed
    if previous is None or previous.get("status") != "exported":
        return "not in the manifest", ""
    return changed_parts(parts, previous.get("export_inputs") or {}) or "fingerprint changed", ""


def _decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True


def export_render(item: ExportItem, job: RenderJob | None, placements: Sequence[Placement], formats: Sequence[str],
                  store: Store, overlays: bool = True, credential: Credential | None = None,
                  previous: Mapping[str, dict] | None = None) -> list[dict]:
    """Every requested format of ``item`` in each of ``placements``, all cut from the render
    ``job`` (None: the item has no render), which is decoded once (and its copy upscaled by the
    style's upscaler, for placements that need more than ``max_upscale``), each file signed
    (C2PA) with ``credential`` (None: the configured one); never raises for bad input.

    A file is written only when its fingerprint differs from that of its row in ``previous``
    (the campaign's manifest rows by path) or the stored file fails verification; each row's
    ``rewritten`` says why it was written this run ("" when the stored file was kept). A stale
    file that cannot be made again (byte cap, undecodable render) is removed, so no file
    outlives what shaped it; one whose inputs cannot be read (missing render or logo) or that
    cannot be signed now is kept. Files are written (and synced to disk) by a thread while the
    next is encoded."""
    with ThreadPoolExecutor(1, thread_name_prefix="export-write") as writes:
        rows = _export_rows(item, job, placements, formats, store, overlays, credential or load_credential(),
                            previous or {}, writes)
        return [row.result() if isinstance(row, Future) else row for row in rows]


def _export_rows(item: ExportItem, job: RenderJob | None, placements: Sequence[Placement], formats: Sequence[str],
                 store: Store, overlays: bool, credential: Credential, previous: Mapping[str, dict],
                 writes: ThreadPoolExecutor) -> list[dict | Future]:
    """``export_render``'s rows; a file being written by ``writes`` has its row's future."""
    inputs: _Inputs | None = None
    rows: list[dict | Future] = []
    for placement in placements:
        placement = sized_for(placement, (job.width, job.height)) if job else placement
        base = _base_row(item, placement, job)
        keys = {fmt: export_key(item, placement.id, fmt) for fmt in _formats_for(formats, placement)}
        if job is None:
            rows += [_failed_row(base, fmt, key, f"no render to export for {item.asset_id} v{item.variant}")
                     for fmt, key in keys.items()]
            continue
        image: Image.Image | None = None
        reason, held, parts, fingerprints = "", [], {}, {}
        source, source_size = render_source_key(job.key), (job.width, job.height)
        if needs_model_upscale(item, job, placement):
            try:
                source, source_size = ensure_upscaled(store, job, item.upscaler)
                base["upscaler"], base["upscaler_factor"] = item.upscaler.tag, round(source_size[0] / job.width, 3)
            except ValueError as exc:
                reason = str(exc)
        base["upscale"] = round(upscale_factor(source_size, placement.width, placement.height), 3)
        base["upscale_flagged"] = base["upscale"] > item.max_upscale
        try:
            inputs = inputs or _read_inputs(item, job, store, overlays)
            pixels = pixel_inputs(item, job, placement, inputs, base["upscaler"])
            parts = {fmt: fingerprint_parts(**pixels, fmt=fmt, approval=(item.approval_id, item.approved_by),
                                            credential=credential) for fmt in keys}
            fingerprints = {fmt: export_fingerprint(fmt_parts) for fmt, fmt_parts in parts.items()}
            # a file exported from these very inputs passed the legibility rules then: not fitted again
            if inputs.overlay is not None and not reason and not _exported_from(previous, keys, fingerprints):
                held = overlay_problems(placement, headline=item.headline, cta=item.cta,
                                        logo_size=inputs.logo.size if inputs.logo else None, style=item.overlay,
                                        locale=item.locale)
        except OSError as exc:
            reason = f"overlay font {item.overlay.font} of {item.asset_id} cannot be used: {exc}"
        except ValueError as exc:
            reason = reason or str(exc)
        if held and not reason:  # text or logo below legible size, a CTA that does not fit, no font
            for fmt, key in keys.items():
                if _stored(store, key) is not None:
                    store.delete(key)  # shipped before the rules held it: not any more
                rows.append(_held_row(base, fmt, key, "; ".join(held)))
            continue
        style = f"{job.style}@{job.style_version}"
        for fmt, key in keys.items():
            if inputs is None or reason:  # the inputs cannot be read now: a stored file is left as it is
                rows.append(_failed_row(base, fmt, key, reason))
                continue
            fingerprint = fingerprints[fmt]
            stored = _stored(store, key)
            why, signed = _stale(previous.get(key), stored, fmt, parts[fmt], fingerprint, placement.max_bytes)
            identity = {"export_fingerprint": fingerprint, "export_inputs": parts[fmt], "rewritten": why}
            if not why:
                rows.append(_file_row(base, fmt, key, stored, signed, **_recorded(previous.get(key), fingerprint))
                            | identity)
                continue
            made = Provenance(job_key=job.key, seed=job.seed, style=style, model=job.model_id,
                              model_revision=job.model_revision, placement=placement.id, approval_id=item.approval_id,
                              approved_by=item.approved_by, export_fingerprint=fingerprint)
            try:
                image = image or _draw(item, job, placement, inputs, store, source)
                encoded = encode(image, fmt, max_bytes=placement.max_bytes,
                                 xmp=xmp_packet(job.key, style, seed=job.seed, model=job.model_id,
                                                model_revision=job.model_revision, fingerprint=fingerprint),
                                 finish=partial(sign, fmt=fmt, provenance=made, credential=credential,
                                                title=key.rsplit("/", 1)[-1]))
            except SigningError as exc:  # the signer cannot be used now: a stored file is left as it is
                rows.append(_failed_row(base, fmt, key, f"{fmt} for {placement.id}: {exc}"))
                continue
            except ByteCapError as exc:
                rows.append(_failed_row(base, fmt, key, _removed(store, key, stored, f"{fmt} for {placement.id}: {exc}")))
                continue
            except ProductHeld as exc:  # never shipped: back to review
                if stored is not None:
                    store.delete(key)
                rows.append(_held_row(base, fmt, key, str(exc)))
                continue
            except ValueError as exc:  # the render cannot be decoded, the font cannot be drawn
                rows.append(_failed_row(base, fmt, key, _removed(store, key, stored, str(exc))))
                continue
            rows.append(writes.submit(_write, store, key, encoded.data, stored is not None, base, fmt, credential.kind,
                                      image.size, identity))
    return rows


def _exported_from(previous: Mapping[str, dict], keys: Mapping[str, str], fingerprints: Mapping[str, str]) -> bool:
    """Whether the manifest rows ``previous`` say every file at ``keys`` (by format) was exported
    with its fingerprint in ``fingerprints`` (by format): made from these inputs, so whether its
    overlays were legible is known."""
    return all((row := previous.get(key)) is not None and row.get("status") == "exported"
               and row.get("export_fingerprint") == fingerprints[fmt] for fmt, key in keys.items())


def _write(store: Store, key: str, data: bytes, overwrite: bool, base: dict, fmt: str, credential: str,
           size: tuple[int, int], identity: dict) -> dict:
    """Write the file ``data`` (signed with a ``credential`` of that kind) at ``key``; its row,
    or that of the file another run wrote there meanwhile."""
    if store.put(key, data, content_type=CONTENT_TYPES[fmt], overwrite=overwrite):
        return _file_row(base, fmt, key, data, credential, size) | identity
    data = store.get(key)
    return _file_row(base, fmt, key, data, _signed_with(data, fmt)) | identity


def _removed(store: Store, key: str, stored: bytes | None, reason: str) -> str:
    """Remove the stale file at ``key`` (if any) that could not be made again; the row's error."""
    if stored is None:
        return reason
    store.delete(key)
    return f"{reason} (the earlier file was removed)"


def rewrite_counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many files a run wrote, by reason (``{"copy changed": 3, "new file": 1}``)."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("rewritten"):
            counts[row["rewritten"]] = counts.get(row["rewritten"], 0) + 1
    return dict(sorted(counts.items()))


def _take_callers_state(environ: dict[str, str], cwd: str, layouts: Mapping[str, Mapping[tuple, object]]) -> None:
    """Pool initializer: a fork-server worker inherits the server's environment and folder, which
    are those of the first pool's caller; take this caller's (e.g. S3 credentials set since), and
    the text layouts it has made (fitting a campaign's texts to every placement size takes
    ~0.1-0.2 s of CPU, which the worker would otherwise spend again)."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    learn_text_layouts(layouts)


# What an export imports only when it first runs (signing, font coverage, saliency's FFT, the
# encoders' Pillow plugins): the fork server imports it once, not every worker.
_WORKER_IMPORTS = ("c2pa", "fontTools.ttLib", "fontTools.ttLib.tables._c_m_a_p",
                   "fontTools.ttLib.tables._m_a_x_p", "fontTools.ttLib.tables._p_o_s_t",
                   "numpy.fft", "numpy.ma", "PIL.AvifImagePlugin", "PIL.WebPImagePlugin")


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a fork server that has imported this module (and the main module,
    and ``_WORKER_IMPORTS``) once, so that a worker starts in milliseconds without importing anything; the server is
    single-threaded, so forking is safe however many threads the caller runs (Prefect does).
    Spawn where there is no fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, *_WORKER_IMPORTS])
    return context


# CPU per pixel of one encode, relative (measured on photo-like 1080x1920: ~0.02 s/Mpx JPEG,
# ~0.12-0.13 WebP and AVIF, ~0.25 lossless PNG): what an export task's time mostly follows.
_ENCODE_COST = {"jpeg": 1, "webp": 6, "avif": 6, "png": 12}


def _cost(placements: Iterable[Placement], formats: Sequence[str]) -> int:
    """The relative CPU time of exporting ``placements`` in ``formats`` (``_ENCODE_COST``)."""
    return sum(p.width * p.height * _ENCODE_COST[fmt] for p in placements for fmt in _formats_for(formats, p))


def _tasks(items: Sequence[ExportItem], placements: Mapping[str, Placement], formats: Sequence[str], workers: int,
           pieces: int) -> tuple[list[tuple[ExportItem, RenderJob | None, list[Placement]]], list[dict]]:
    """(item, render, placements cut from it) tasks, and the rows of unknown placements.

    Placements that share a render go in one task so that it is decoded once; with workers,
    a task is cut at about 1/``pieces`` of a worker's share of the work (``_cost``), so that the
    tasks left when the queue runs out are short (the cost: a decode and saliency, ~20 ms, per
    cut, unless the process that takes it has just decoded that render: ``_RECENT``)."""
    rows: list[dict] = []
    groups: dict[tuple[int, str], list[Placement]] = {}
    jobs: dict[tuple[int, str], RenderJob | None] = {}
    for index, item in enumerate(items):
        rows += [_item_rejected_row(item, pid, why) for pid, why in sorted(item.rejected.items())]
        for pid in item.placements:
            if pid not in placements:
                rows.append(_unknown_placement_row(item, pid, placements))
                continue
            job = nearest_render(item.renders, placements[pid]) if item.renders else None
            group = (index, job.key if job else "")
            groups.setdefault(group, []).append(placements[pid])
            jobs[group] = job
    share = sum(_cost(group, formats) for group in groups.values()) / (pieces * workers) if workers > 1 else math.inf
    tasks = []
    for (index, key), group in groups.items():
        chunk: list[Placement] = []
        for placement in group:
            if chunk and _cost([*chunk, placement], formats) > share:
                tasks.append((items[index], jobs[(index, key)], chunk))
                chunk = []
            chunk.append(placement)
        tasks.append((items[index], jobs[(index, key)], chunk))
    return tasks, rows


ExportTask = tuple  # the arguments of one ``export_render`` call, as ``prepare_exports`` gives them


def prepare_exports(items: Sequence[ExportItem], store: Store, placements: Mapping[str, Placement], *,
                    formats: Sequence[str] = DEFAULT_FORMATS, workers: int = 1, overlays: bool = True,
                    credential: Credential | None = None, manifests: dict[str, dict[str, dict]] | None = None,
                    pieces: int = 32) -> tuple[list[ExportTask], list[dict]]:
    """The ``export_render`` calls that export ``items`` (see ``export_assets``), and the rows of
    their unknown placements. Upscaled copies the tasks need are made here (the model runs in
    this process, once per render). ``manifests``: campaign -> its manifest rows by path, read
    once by a caller that prepares many batches (missing campaigns are read and added).
    ``pieces``: with workers, tasks are cut at about 1/pieces of a worker's share (``_tasks``); fine
    cuts cost little, as the queue keeps a process on one render's tasks (``_RenderQueue``) and a
    process decodes a render once for the tasks it takes from it (``_RECENT``)."""
    formats = run_formats(formats)
    credential = credential or load_credential()
    tasks, rows = _tasks(items, placements, formats, workers, pieces)
    manifests = {} if manifests is None else manifests
    for campaign in {item.campaign for item in items} - set(manifests):
        manifests[campaign] = read_manifest(store, campaign)

    def previous(item: ExportItem, group: Sequence[Placement]) -> dict[str, dict]:
        keys = (export_key(item, p.id, fmt) for p in group for fmt in _formats_for(formats, p))
        return {key: manifests[item.campaign][key] for key in keys if key in manifests[item.campaign]}

    for item, job, group in tasks:  # the model runs in this process only, once per render and upscaler
        if job is not None and any(needs_model_upscale(item, job, sized_for(p, (job.width, job.height)))
                                   for p in group):
            try:
                ensure_upscaled(store, job, item.upscaler)
            except ValueError:
                pass  # export_render gives the failed rows their reason
    return [(item, job, group, tuple(formats), store, overlays, credential, previous(item, group))
            for item, job, group in tasks], rows


def export_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes for ``run_export_task`` (forked from a fork server, with
    this process's environment and folder, and the text layouts it has made so far)."""
    return ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_take_callers_state,
                               initargs=(dict(os.environ), os.getcwd(), text_layouts()))


def only_verified(rows: Sequence[dict]) -> bool:
    """Whether an export task's rows are all files that were already current (kept after their
    bytes verified): no encoding was needed, so a worker pool would have had nothing to do."""
    return all(row.get("status") == "exported" and not row.get("rewritten") for row in rows)


def run_export_task(task: ExportTask) -> list[dict]:
    """The rows of one task of ``prepare_exports`` (picklable: a process pool can run it)."""
    return export_render(*task)


def likely_new(task: ExportTask) -> bool:
    """Whether a file of ``task`` has no exported row among its manifest rows, so it will most
    likely be written (not only verified): reason enough to start workers before verifying."""
    item, job, group, formats, *_, previous = task
    return job is not None and any(previous.get(export_key(item, p.id, fmt), {}).get("status") != "exported"
                                   for p in group for fmt in _formats_for(formats, p))


class _RenderQueue:
    """The tasks of one export, handed out so that a process stays with one render's tasks:
    renders (their tasks together) longest first, and in a render its tasks longest first. A
    taker gets the next task of the render it took last; when that has none left, the first
    render nobody has started; when none is left, the next task of the render with the most work
    left (it helps another process finish, so all end within about one short task)."""

    def __init__(self, tasks: Sequence[ExportTask]) -> None:
        self._left: dict[tuple, deque[int]] = {}
        self._cost: dict[tuple, int] = {}
        costs = [_cost(task[2], task[3]) for task in tasks]
        for index in sorted(range(len(tasks)), key=lambda i: -costs[i]):
            render = self._render(tasks[index])
            self._left.setdefault(render, deque()).append(index)
            self._cost[render] = self._cost.get(render, 0) + costs[index]
        self._costs = costs
        self._fresh = deque(sorted(self._left, key=lambda render: -self._cost[render]))
        self._last: dict[object, tuple] = {}

    @staticmethod
    def _render(task: ExportTask) -> tuple:
        item, job = task[0], task[1]
        return item.campaign, item.asset_id, item.variant, job.key if job is not None else ""

    def __len__(self) -> int:
        return sum(len(left) for left in self._left.values())

    def take(self, taker: object) -> int | None:
        """The index of ``taker``'s next task (None: none left)."""
        render = self._last.get(taker)
        if render is None or not self._left[render]:
            if self._fresh:
                render = self._fresh.popleft()
            else:
                render = max(self._left, key=lambda r: (bool(self._left[r]), self._cost[r]), default=None)
                if render is None or not self._left[render]:
                    return None
        self._last[taker] = render
        index = self._left[render].popleft()
        self._cost[render] -= self._costs[index]
        return index


def _run_shared(tasks: Sequence[ExportTask], count: int) -> list[list[dict]]:
    """The rows of each of ``tasks``, made by this process and ``count - 1`` workers.

    Each takes one task at a time from a shared queue (``_RenderQueue``: a render's tasks
    together, longest first), so that all work until the queue is empty, the last tasks are
    short, and no core is left to a process that only waits. Files already current only
    need verifying: this process starts the workers at the first task that (likely) has files to
    write, so an export with nothing new starts no pool."""
    queue = _RenderQueue(tasks)
    results: dict[int, list[dict]] = {}
    lock, failures = threading.Lock(), []

    def take(taker: object) -> int | None:
        with lock:
            return None if failures else queue.take(taker)

    def feed(pool: ProcessPoolExecutor) -> None:
        try:
            while (index := take(threading.current_thread())) is not None:
                results[index] = pool.submit(run_export_task, tasks[index]).result()
        except BaseException as exc:  # a worker died: stop everyone, raise it below
            with lock:
                failures.append(exc)

    pool, feeders = None, []
    start = any(likely_new(task) for task in tasks)
    try:
        while (index := take(None)) is not None:
            if start and pool is None and queue:
                size = min(count - 1, len(queue))
                pool = export_pool(size)
                feeders = [threading.Thread(target=feed, args=(pool,), daemon=True) for _ in range(size)]
                for feeder in feeders:
                    feeder.start()
            results[index] = run_export_task(tasks[index])
            start = start or not only_verified(results[index])
    except BaseException as exc:
        with lock:
            failures.append(exc)
        raise
    finally:
        for feeder in feeders:
            feeder.join()
        if pool is not None:
            pool.shutdown()
    if failures:
        raise failures[0]
    return [results[i] for i in range(len(tasks))]


def export_assets(items: Sequence[ExportItem], store: Store, placements: Mapping[str, Placement], *,
                  formats: Sequence[str] = DEFAULT_FORMATS, workers: int | None = None,
                  overlays: bool = True, credential: Credential | None = None) -> list[dict]:
    """Export every item to each of its placements in each format; manifest rows sorted by path.
    Files whose export fingerprint matches their row in the campaign's manifest (and whose bytes
    still verify) are kept as they are; ``rewrite_counts`` of the rows says what was written and why.

    ``formats``: any of webp, avif, jpeg, png, upload. ``workers``: processes (None:
    ``$BRANDBATCH_EXPORT_WORKERS``, else all cores; 1: in this process). A placement that enlarges its render more than the item's
    ``max_upscale`` is cut from the render upscaled by the item's ``upscaler`` (made here, once
    per render, before the workers start, and stored content-addressed); a file still enlarged
    more than that is exported and flagged (``upscale_flagged``). ``overlays``: draw each item's headline,
    CTA and logo in its ``overlay`` style (False: export the bare render); a placement where text
    or logo would be below its legible minimum, or the CTA does not fit, or a glyph has no font,
    is not made: its rows have ``status: review`` and the reasons in ``error``. Every file carries
    C2PA Content Credentials signed with
    ``credential`` (None: ``load_credential()``: the configured one, else the development one;
    ``CredentialError`` if the configuration is incomplete); rows say which kind in ``c2pa_credential``.
    """
    count = workers or load_settings().export_workers or os.cpu_count() or 1
    args, rows = prepare_exports(items, store, placements, formats=formats, workers=count, overlays=overlays,
                                 credential=credential)
    try:
        results = [run_export_task(task) for task in args] if min(count, len(args)) <= 1 else _run_shared(args, count)
    finally:
        _forget_decoded()
    rows.extend(row for result in results for row in result)
    return sorted(rows, key=lambda row: row["path"])


def export_failure_lines(rows: Sequence[dict], placements: Mapping[str, Placement],
                         formats: Sequence[str]) -> list[str]:
    """One line per export that failed (which file, why), and, when ``upload`` was asked for, per
    placement of an asset variant left without an exported file in a format the platform accepts
    for upload (JPEG/PNG): that placement cannot go live."""
    lines = [f"export failed: {row['path']}: {row['error']}" for row in rows
             if row.get("status") not in ("exported", "review", "rejected")]
    if "upload" in formats:
        uploadable: dict[tuple[str, int, str], bool] = {}
        held = {(r["asset_id"], r["variant"], r["placement"]) for r in rows if r.get("status") in ("review", "rejected")}
        for row in rows:
            placement = placements.get(row["placement"])
            if placement is None or (row["asset_id"], row["variant"], row["placement"]) in held:
                continue  # held files wait for a designer, rejected ones do not ship (not a failure)
            key = (row["asset_id"], row["variant"], row["placement"])
            ok = row.get("status") == "exported" and row.get("format") in placement.upload_formats
            uploadable[key] = uploadable.get(key, False) or ok
        for (asset_id, variant, pid), ok in sorted(uploadable.items()):
            if not ok:
                lines.append(f"no uploadable file: {asset_id} v{variant} has no {'/'.join(placements[pid].upload_formats)} "
                             f"export for placement {pid} (the platform accepts only these for upload)")
    return lines


def held_for_review(rows: Sequence[dict]) -> dict[tuple[str, int], str]:
    """(asset_id, variant) -> the reasons, for each item with files held for review (``status: review``)."""
    held: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        if row.get("status") == "review":
            reasons = held.setdefault((row["asset_id"], row["variant"]), [])
            reason = f"{row['placement']}: {row['error']}"
            if reason not in reasons:
                reasons.append(reason)
    return {key: "; ".join(reasons) for key, reasons in held.items()}


def _unknown_placement_row(item: ExportItem, pid: str, known: Iterable[str]) -> dict:
    return _item_failed_row(item, pid, unknown_placement(pid, known))


def _item_rejected_row(item: ExportItem, pid: str, reason: str) -> dict:
    """The row of a placement a designer rejected (``status: rejected``; the reason in ``error``):
    nothing is made for it, and its earlier files are withdrawn (``write_manifests``)."""
    return _item_failed_row(item, pid, reason) | {"status": "rejected"}


def _item_failed_row(item: ExportItem, pid: str, reason: str) -> dict:
    """The row of a placement of ``item`` that nothing was exported for (no format, no file)."""
    return {name: "" for name in MANIFEST_FIELDS} | {
        "asset_id": item.asset_id, "row": item.row, "variant": item.variant, "placement": pid,
        "path": keys.export_stem(item.campaign, pid, item.asset_id, item.variant), "bytes": 0, "status": "failed",
        "error": reason,
        "qa_verdict": item.qa_verdict, "approval_id": item.approval_id, "approved_by": item.approved_by,
        "alt_text": item.alt_text,
    }


def refuse_banned_text(items: Sequence[ExportItem], banned_for: Callable[[RenderJob], Sequence[str]]
                       ) -> tuple[list[ExportItem], list[dict]]:
    """Check every text of each item that ships (file name, manifest, overlay, platform: asset id,
    headline, CTA, alt text) against the banned terms of its render's style as they are now
    (``banned_for``: job -> terms): returns the items that pass, and a failed row per placement
    of each item that does not (nothing of it is exported)."""
    passed, rows = [], []
    for item in items:
        job = next(iter(item.renders.values()), None)
        texts = {"asset_id": item.asset_id, "headline": item.headline, "cta": item.cta, "alt_text": item.alt_text}
        try:
            problems = shipped_text_problems(texts, banned_for(job)) if job is not None else []
        except ValueError as exc:  # the style cannot be read now: its terms cannot be checked, fail closed
            problems = [f"banned terms cannot be checked: {exc}"]
        if not problems:
            passed.append(item)
            continue
        reason = f"{'; '.join(problems)} (style {job.style}@{job.style_version}): nothing of it is exported"
        rows += [_item_failed_row(item, pid, reason) for pid in item.placements]
    return passed, rows


__all__ = ["DEFAULT_FORMATS", "RUN_FORMATS", "run_formats", "ExportItem", "export_assets", "export_failure_lines",
           "export_pool", "export_render", "held_for_review", "only_verified", "prepare_exports", "refuse_banned_text",
           "rewrite_counts", "run_export_task", "write_manifests"]
