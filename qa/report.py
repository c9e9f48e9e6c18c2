"""Per-campaign QA summary (markdown, for a Prefect artifact) and the offline ``report.html``.

Both are deterministic: sorted counts, thumbnails encoded the same way every run (and kept in the
store by their image's content, ``thumbnail_key``: a rebuild decodes only new images), and only
what callers pass in (the metric tables carry the recorded runs' timestamps), so a rerun over
the same renders and records gives byte-identical output. The report opens from disk: inline
CSS, thumbnails as ``data:`` URIs, exports linked relative to ``<campaign>/report.html``.
The review app serves the same body (:func:`report_body`) with its images as URLs
(:class:`Served`); ``review.campaign_page`` gathers the inputs and rebuilds the file.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from jinja2.bccache import Bucket
from markupsafe import Markup
from PIL import Image

from plan.jobs import RenderJob
from qa.image import decode
from qa.verdicts import VERDICTS, QAResult
from settings import load_settings
from store.base import Store
from store.documents import PublishRecord
from store.keys import manifest_csv_key, manifest_key, render_key, thumbnail_key

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "report"
THUMB_SIZE = 128  # longer side of contact-sheet thumbnails, px
THUMB_QUALITY = 75
NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class ScoreStats:
    name: str
    count: int
    minimum: float
    median: float
    maximum: float


@dataclass(frozen=True)
class Table:
    """A titled table for the report (e.g. the run metrics computed by qa/metrics.py);
    ``empty`` is shown instead when there are no rows."""

    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    empty: str = ""


@dataclass(frozen=True)
class ReviewState:
    """An asset variant's state in the review queue, as the report shows it."""

    state: str  # queued, approved, rejected, reroll_requested
    approved_by: str | None = None


@dataclass(frozen=True)
class Served:
    """How the review app addresses the report's images (its CSP allows no ``data:`` URIs):
    ``export``: a manifest row -> its thumbnail's URL; ``render``: a job key -> its URL."""

    export: Callable[[Mapping], str]
    render: Callable[[str], str]


@dataclass(frozen=True)
class QASummary:
    total: int
    verdicts: list[tuple[str, int]]  # every verdict, fail/review/pass order
    reasons: list[tuple[str, int]]  # most frequent first, then by name
    scores: list[ScoreStats]  # by score name; NaN scores are not counted


def summarize(results: Sequence[QAResult]) -> QASummary:
    verdicts = Counter(r.verdict for r in results)
    reasons = Counter(reason for r in results for reason in r.reasons)
    values: dict[str, list[float]] = {}
    for r in results:
        for name, value in r.scores.items():
            if math.isfinite(value):
                values.setdefault(name, []).append(float(value))
    stats = [ScoreStats(name, len(v), min(v), statistics.median(v), max(v))  # numpy's median imports numpy.ma
             for name, v in sorted(values.items())]
    return QASummary(
        total=len(results),
        verdicts=[(v, verdicts.get(v, 0)) for v in VERDICTS],
        reasons=sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
        scores=stats,
    )


def _num(value: float) -> str:
    return f"{value:.4g}"


def summary_markdown(campaign: str, results: Sequence[QAResult]) -> str:
    """The campaign's QA summary as markdown: counts per verdict and reason, score distributions."""
    s = summarize(results)
    lines = [f"# QA summary: {campaign}", "", f"{s.total} renders checked.", "",
             "| verdict | renders |", "|---|---:|"]
    lines += [f"| {verdict} | {count} |" for verdict, count in s.verdicts]
    lines += ["", "| reason | renders |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in s.reasons] or ["| (none) | 0 |"]
    lines += ["", "| score | n | min | median | max |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {x.name} | {x.count} | {_num(x.minimum)} | {_num(x.median)} | {_num(x.maximum)} |" for x in s.scores]
    return "\n".join(lines) + "\n"


def thumbnail_uri(store: Store, job_key: str, size: int = THUMB_SIZE) -> str | None:
    """A small JPEG ``data:`` URI of the job's render, or None if it cannot be read."""
    return _thumbnail(store, render_key(job_key), f"render:{job_key}", size)


def thumbnail_jpeg(store: Store, key: str, size: int = THUMB_SIZE) -> bytes | None:
    """A small JPEG of the image stored at ``key`` (longer side ``size``), or None if it cannot be read."""
    try:
        image = decode(store.get(key))
    except Exception:  # a missing or broken image shows as a placeholder
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMB_QUALITY, optimize=False, progressive=False)
    return buffer.getvalue()


def _thumbnail(store: Store, key: str, source: str | None, size: int = THUMB_SIZE) -> str | None:
    """A small JPEG ``data:`` URI of the image stored at ``key``, or None if it cannot be read.
    ``source`` names the image's content (``render:<job key>``, ``file:<sha256>``): its thumbnail
    is made once and kept in the store (``thumbnail_key``); None: made every time."""
    kept = thumbnail_key(source, size, THUMB_QUALITY) if source else None
    data = None
    if kept:
        try:
            data = store.get(kept)
        except FileNotFoundError:
            pass
    if data is None:
        data = thumbnail_jpeg(store, key, size)
        if data is not None and kept:
            store.put(kept, data, content_type="image/jpeg", overwrite=True)
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _review_line(review: ReviewState | None) -> str:
    if review is None:
        return "not in the review queue"
    by = f" by {review.approved_by}" if review.state == "approved" and review.approved_by else ""
    return f"{review.state.replace('_', ' ')}{by}"


def _tiles(jobs: Sequence[RenderJob], results: Sequence[QAResult], store: Store,
           reviews: Mapping[tuple[str, int], ReviewState], served: Served | None) -> list[tuple[str, list[dict]]]:
    by_key = {r.job_key: r for r in results}
    expansions = Counter(job.master_key for job in {j.key: j for j in jobs}.values() if job.is_expansion)
    groups: dict[str, list[dict]] = {v: [] for v in (*VERDICTS, NOT_CHECKED)}
    seen: set[str] = set()
    for job in jobs:
        if job.key in seen:
            continue
        seen.add(job.key)
        result = by_key.get(job.key)
        groups[result.verdict if result else NOT_CHECKED].append({
            "title": f"{job.row_key} v{job.variant} {job.aspect}",
            "size": f"{job.width}x{job.height}",
            "family": (f"expansion of master {job.master_key[:12]}" if job.is_expansion else
                       f"master of {expansions[job.key]} expansion{'s' if expansions[job.key] != 1 else ''}"
                       if expansions[job.key] else ""),
            "job_key": job.key,
            "reasons": list(result.reasons) if result else [],
            "details": sorted(result.details.items()) if result else [],
            "review": _review_line(reviews.get((job.row_key, job.variant))) if reviews else "",
            "thumb": served.render(job.key) if served else thumbnail_uri(store, job.key),
        })
    return [(name, tiles) for name, tiles in groups.items() if tiles]


SHEET_FORMATS = ("png", "jpeg", "webp", "avif")  # which export file shows a placement on the contact sheet


def _shipped(rows: Sequence[dict], store: Store, reviews: Mapping[tuple[str, int], ReviewState],
             served: Served | None) -> list[dict]:
    """The contact sheet of what ships: one tile per exported (asset, variant, placement), its
    thumbnail made from an exported file (lossless first), with the approver and, when a
    designer changed their mind since the export, the variant's state now."""
    tiles = []
    for (asset, variant, placement), row in sorted(_sheet_rows(rows).items()):
        review = reviews.get((asset, variant))
        state = str(row.get("status", "exported"))
        if review is not None and review.state != "approved":
            state += f", now {review.state.replace('_', ' ')}: withdrawn by the next export"
        tiles.append({"asset_id": asset, "variant": variant, "placement": placement,
                      "approved_by": str(row.get("approved_by") or ""), "state": state,
                      "size": f"{row.get('width')}x{row.get('height')}",
                      "thumb": served.export(row) if served else _export_thumbnail(store, row)})
    return tiles


def _sheet_rows(rows: Iterable[dict]) -> dict[tuple[str, int, str], dict]:
    """(asset, variant, placement) -> the exported row whose file shows it on the contact sheet
    (the first of ``SHEET_FORMATS`` among its formats)."""
    best: dict[tuple[str, int, str], dict] = {}
    for row in rows:
        if row.get("status", "exported") != "exported" or row.get("format") not in SHEET_FORMATS:
            continue
        key = (str(row.get("asset_id")), int(row.get("variant") or 0), str(row.get("placement")))
        if key not in best or SHEET_FORMATS.index(row["format"]) < SHEET_FORMATS.index(best[key]["format"]):
            best[key] = row
    return best


def _export_thumbnail(store: Store, row: Mapping) -> str | None:
    return _thumbnail(store, str(row["path"]), f"file:{row['sha256']}" if row.get("sha256") else None)


def keep_thumbnails(store: Store, job_keys: Iterable[str], rows: Sequence[dict]) -> None:
    """Make the report's thumbnails of these renders and of the contact-sheet files among these
    export rows (all formats of a placement among them), and keep them in the store, so that a
    report built later only reads them: ``pipeline.stream`` makes them while later rows render."""
    for key in job_keys:
        thumbnail_uri(store, key)
    for row in _sheet_rows(rows).values():
        _export_thumbnail(store, row)


def _failures(rows: Sequence[dict]) -> list[dict]:
    """Export rows that did not ship (failed, or held for review), with their reasons."""
    return [{"asset_id": str(r.get("asset_id", "")), "variant": r.get("variant", ""),
             "placement": str(r.get("placement", "")), "format": str(r.get("format", "")),
             "state": str(r.get("status", "")), "reason": str(r.get("error", ""))}
            for r in rows if r.get("status", "exported") != "exported"]


def credential_note(rows: Iterable[Mapping]) -> str:
    """One line for run summaries and reports: which credential signed the exported files."""
    kinds = sorted({row.get("c2pa_credential") or "unsigned" for row in rows if row.get("status") == "exported"})
    if not kinds:
        return ""
    notes = {"development": "a DEVELOPMENT credential (local CA, not trusted; set $BRANDBATCH_C2PA_CERTS and "
                            "$BRANDBATCH_C2PA_KEY or $BRANDBATCH_C2PA_SIGN_COMMAND to sign with yours)",
             "configured": "the configured credential", "unsigned": "nothing (files from before signing)"}
    return "Content Credentials (C2PA) signed with " + " and ".join(notes[kind] for kind in kinds)


def review_counts(reviews: Mapping[tuple[str, int], ReviewState]) -> list[tuple[str, int]]:
    """Variants per review state (queue order: waiting first)."""
    counts = Counter(r.state for r in reviews.values())
    order = ("queued", "reroll_requested", "approved", "rejected")
    return [(state.replace("_", " "), counts[state]) for state in (*order, *sorted(set(counts) - set(order)))]


def upscale_warnings(manifest_rows: Iterable[Mapping]) -> list[str]:
    """One line per asset in a placement whose exported files are still enlarged more than its
    style's ``max_upscale`` from their source (the render, or its model-upscaled copy), naming the
    formats (``.../meta.stories/bottle-03 (.avif .jpg .webp): enlarged ...``): the run summary,
    the report and the review page show these."""
    formats: dict[tuple[str, str], list[str]] = {}
    for row in manifest_rows:
        if row.get("status", "exported") == "exported" and row.get("upscale_flagged"):
            stem, _, suffix = row["path"].rpartition(".")  # an export's path always ends in its format
            source = f"its render upscaled by {row['upscaler']}" if row.get("upscaler") else "its render"
            limit = f"{row['max_upscale']:g}x" if row.get("max_upscale") else "the style's limit"
            said = f"enlarged {row['upscale']:g}x from {source}, above {limit} (max_upscale)"
            formats.setdefault((stem, said), []).append(f".{suffix}")
    return [f"{stem} ({' '.join(sorted(suffixes))}): {said}" for (stem, said), suffixes in formats.items()]


MANIFEST_COLUMNS = ("asset_id", "variant", "placement", "format", "width", "height", "bytes", "qa_verdict",
                    "c2pa_credential", "path")


def relative_link(campaign: str, path: str) -> str:
    """``path`` (relative to the store root) as a link that works from ``<campaign>/report.html``."""
    inside = path[len(campaign) + 1:] if path.startswith(f"{campaign}/") else f"../{path}"
    return quote(inside)


class _BytecodeCache(FileSystemBytecodeCache):
    """Jinja's compiled templates kept on disk; one that cannot be written is compiled again next time."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:  # a full disk or a read-only cache folder: the report is made all the same
            pass


def _bytecode_cache() -> _BytecodeCache | None:
    """``$BRANDBATCH_CACHE/jinja`` (private to the user: it holds code), or None where it cannot be made."""
    folder = load_settings().cache / "jinja"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return _BytecodeCache(str(folder))


@functools.cache
def _environment() -> Environment:
    """The report's templates, each compiled once per process (Jinja reloads one whose file changed)
    and kept compiled in brandbatch's cache folder for the next process: a command that rebuilds
    the report skips compiling it (~30 ms); an entry is named by its template's source, never stale."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                      bytecode_cache=_bytecode_cache())
    env.filters["num"] = _num
    return env


def report_body(campaign: str, jobs: Sequence[RenderJob], results: Sequence[QAResult], store: Store,
                manifest_rows: Sequence[dict], extra: Mapping | None = None, tables: Sequence[Table] = (), *,
                reviews: Mapping[tuple[str, int], ReviewState] | None = None,
                published: PublishRecord | None = None,
                served: Served | None = None) -> str:
    """The report's content (no document around it): the contact sheet of what ships (each
    exported placement with its approver and state), export failures with reasons, the latest
    publish, then the summary, the review queue's counts, ``tables`` (metrics), QA counts,
    planning problems, the renders grouped by verdict (with their review state) and links to
    the exported files. ``reviews``: (asset id, variant) -> its review state; ``served``: image
    URLs for the review app (default: inline ``data:`` thumbnails)."""
    extra = dict(extra or {})
    reviews = dict(reviews or {})
    rows = sorted(manifest_rows, key=lambda r: (str(r.get("placement", "")), str(r.get("path", ""))))
    done = [r.get("status", "exported") == "exported" for r in rows]
    return _environment().get_template("report_body.html.j2").render(
        campaign=campaign,
        jobs=len({job.key for job in jobs}),
        exported=sum(done),
        export_failed=sum(1 for r in rows if r.get("status") == "failed"),  # held or rejected: not failures
        manifest_links=[(key.rpartition("/")[2], relative_link(campaign, key))
                        for key in (manifest_key(campaign), manifest_csv_key(campaign))],
        summary=summarize(results),
        reviews=review_counts(reviews) if reviews else [],
        published=published,
        tables=list(tables),
        problems=[str(p) for p in extra.get("problems", [])],
        upscale_warnings=upscale_warnings(rows),
        credential=credential_note(rows),
        groups=_tiles(jobs, results, store, reviews, served),
        shipped=_shipped(rows, store, reviews, served),
        failures=_failures(rows),
        manifest_columns=MANIFEST_COLUMNS,
        manifest=[([row.get(c, "") for c in MANIFEST_COLUMNS],
                   relative_link(campaign, str(row["path"])) if ok and row.get("path") else None)
                  for row, ok in zip(rows, done, strict=True)],
    )


def render_report(campaign: str, jobs: Sequence[RenderJob], results: Sequence[QAResult], store: Store,
                  manifest_rows: Sequence[dict], extra: Mapping | None = None, tables: Sequence[Table] = (), *,
                  reviews: Mapping[tuple[str, int], ReviewState] | None = None,
                  published: PublishRecord | None = None) -> str:
    """The self-contained offline HTML run report: :func:`report_body` in a page with inline
    CSS (``templates/report/report.css``) and ``data:`` thumbnails."""
    body = report_body(campaign, jobs, results, store, manifest_rows, extra, tables, reviews=reviews,
                       published=published)
    return _environment().get_template("report.html.j2").render(
        campaign=campaign, css=(TEMPLATES / "report.css").read_text(encoding="utf-8"), body=Markup(body))
