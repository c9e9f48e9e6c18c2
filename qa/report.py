"""Per-campaign QA summary (markdown, for a Prefect artifact) and the offline ``report.html``.

Both are deterministic: sorted counts, thumbnails encoded the same way every run, and only
what callers pass in (the metric tables carry the recorded runs' timestamps), so a rerun over
the same renders and records gives byte-identical output. The report opens from disk: inline
CSS, thumbnails as ``data:`` URIs, exports linked relative to ``<campaign>/report.html``.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image

from plan.jobs import RenderJob
from qa.image import decode
from qa.verdicts import VERDICTS, QAResult
from store.base import Store
from store.keys import manifest_csv_key, manifest_key, render_key

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
    stats = [ScoreStats(name, len(v), float(np.min(v)), float(np.median(v)), float(np.max(v)))
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
    return _thumbnail(store, render_key(job_key), size)


def _thumbnail(store: Store, key: str, size: int = THUMB_SIZE) -> str | None:
    """A small JPEG ``data:`` URI of the image stored at ``key``, or None if it cannot be read."""
    try:
        image = decode(store.get(key))
    except Exception:  # a missing or broken render shows as a placeholder in the report
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMB_QUALITY, optimize=False, progressive=False)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _tiles(jobs: Sequence[RenderJob], results: Sequence[QAResult], store: Store) -> list[tuple[str, list[dict]]]:
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
            "thumb": thumbnail_uri(store, job.key),
        })
    return [(name, tiles) for name, tiles in groups.items() if tiles]


SHEET_FORMATS = ("png", "jpeg", "webp", "avif")  # which export file shows a placement on the contact sheet


def _shipped(rows: Sequence[dict], store: Store) -> list[dict]:
    """The contact sheet of what ships: one tile per exported (asset, variant, placement), its
    thumbnail made from an exported file (lossless first), with the approver."""
    best: dict[tuple, dict] = {}
    for row in rows:
        if row.get("status", "exported") != "exported" or row.get("format") not in SHEET_FORMATS:
            continue
        key = (str(row.get("asset_id")), int(row.get("variant") or 0), str(row.get("placement")))
        if key not in best or SHEET_FORMATS.index(row["format"]) < SHEET_FORMATS.index(best[key]["format"]):
            best[key] = row
    return [{"asset_id": asset, "variant": variant, "placement": placement,
             "approved_by": str(row.get("approved_by") or ""), "state": str(row.get("status", "exported")),
             "size": f"{row.get('width')}x{row.get('height')}", "thumb": _thumbnail(store, str(row["path"]))}
            for (asset, variant, placement), row in sorted(best.items())]


def _failures(rows: Sequence[dict]) -> list[dict]:
    """Export rows that did not ship (failed, or held for review), with their reasons."""
    return [{"asset_id": str(r.get("asset_id", "")), "variant": r.get("variant", ""),
             "placement": str(r.get("placement", "")), "format": str(r.get("format", "")),
             "state": str(r.get("status", "")), "reason": str(r.get("error", ""))}
            for r in rows if r.get("status", "exported") != "exported"]


def upscale_warnings(manifest_rows: Iterable[Mapping]) -> list[str]:
    """One line per exported file still enlarged more than its style's ``max_upscale`` from its
    source (the render, or its model-upscaled copy): the run summary, the report and the review
    page show these."""
    lines = []
    for row in manifest_rows:
        if row.get("status", "exported") == "exported" and row.get("upscale_flagged"):
            source = f"its render upscaled by {row['upscaler']}" if row.get("upscaler") else "its render"
            limit = f"{row['max_upscale']:g}x" if row.get("max_upscale") else "the style's limit"
            lines.append(f"{row['path']}: enlarged {row['upscale']:g}x from {source}, above {limit} (max_upscale)")
    return lines


MANIFEST_COLUMNS = ("asset_id", "variant", "placement", "format", "width", "height", "bytes", "qa_verdict",
                    "c2pa_credential", "path")


def relative_link(campaign: str, path: str) -> str:
    """``path`` (relative to the store root) as a link that works from ``<campaign>/report.html``."""
    inside = path[len(campaign) + 1:] if path.startswith(f"{campaign}/") else f"../{path}"
    return quote(inside)


def render_report(campaign: str, jobs: Sequence[RenderJob], results: Sequence[QAResult], store: Store,
                  manifest_rows: Sequence[dict], extra: Mapping | None = None, tables: Sequence[Table] = ()) -> str:
    """The self-contained offline HTML run report: the contact sheet of what ships (each exported
    placement with its approver), export failures with reasons, then the summary, ``tables``
    (metrics), QA counts, planning problems, the renders grouped by verdict and links to the
    exported files."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    extra = dict(extra or {})
    rows = sorted(manifest_rows, key=lambda r: (str(r.get("placement", "")), str(r.get("path", ""))))
    done = [r.get("status", "exported") == "exported" for r in rows]
    return env.get_template("report.html.j2").render(
        campaign=campaign,
        jobs=len({job.key for job in jobs}),
        exported=sum(done),
        export_failed=len(rows) - sum(done),
        manifest_links=[(key.rpartition("/")[2], relative_link(campaign, key))
                        for key in (manifest_key(campaign), manifest_csv_key(campaign))],
        summary=summarize(results),
        tables=list(tables),
        problems=[str(p) for p in extra.get("problems", [])],
        upscale_warnings=upscale_warnings(rows),
        credential=str(extra.get("credential", "")),
        groups=_tiles(jobs, results, store),
        shipped=_shipped(rows, store),
        failures=_failures(rows),
        manifest_columns=MANIFEST_COLUMNS,
        manifest=[([row.get(c, "") for c in MANIFEST_COLUMNS],
                   relative_link(campaign, str(row["path"])) if ok and row.get("path") else None)
                  for row, ok in zip(rows, done, strict=True)],
    )
