"""Per-campaign manifests: ``<campaign>/manifest.json`` and a spreadsheet-safe ``manifest.csv``.

One row per export file (key: ``path``, the file's store key). Rows of earlier runs are kept
and replaced by path, rows are sorted by path, and nothing time-dependent is written, so a
rerun that exports nothing new rewrites byte-identical manifests. A manifest torn on disk (cut
short, zero-filled) is rebuilt from the rows given; a file that is not a manifest is refused.
The JSON rows also keep ``export_inputs`` (the digest of each part of the export fingerprint,
see ``exports.fingerprint``), which tell a later run why a file is stale; the CSV leaves it out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping

from store.base import Store
from store.documents import DocumentError, Manifest, dump_document, parse_document
from store.keys import manifest_csv_key, manifest_key

MANIFEST_FIELDS = (
    "asset_id", "row", "variant", "placement", "platform", "format", "width", "height", "bytes", "sha256", "path",
    "status", "error", "upscale", "upscale_flagged", "max_upscale", "upscaler", "upscaler_factor", "seed", "style",
    "style_version", "model", "model_revision", "job_key", "master_job_key", "prompt_sha256", "qa_verdict",
    "approval_id", "approved_by", "alt_text", "headline", "cta", "locale", "c2pa_credential", "export_fingerprint",
    "input_images",
)
JSON_ONLY_FIELDS = ("export_inputs", "overrides")  # in manifest.json rows, not in the CSV
RUN_ONLY_FIELDS = ("rewritten",)  # what this run did to a file: in the rows a run returns, not in manifests
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe (OWASP CSV
    injection advice); numbers and booleans pass through."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def manifest_json(rows: Iterable[dict]) -> bytes:
    return dump_document(Manifest.model_validate(list(rows)), indent=2, exclude_unset=True)


def manifest_csv(rows: Iterable[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: neutralise(row.get(name, "")) for name in MANIFEST_FIELDS})
    return buffer.getvalue().encode("utf-8")


def _torn(data: bytes, error: DocumentError) -> bool:
    """A manifest of ours cut short or zero-filled on disk (a crash, a bad copy): empty, all NUL,
    or a JSON list that does not parse."""
    return not data.strip(b"\0 \t\r\n") or (error.unparsable and data.lstrip().startswith(b"["))


def manifest_row(row: dict) -> dict:
    """``row`` as the manifest keeps it: without what one run did to the file (``RUN_ONLY_FIELDS``)."""
    return {name: value for name, value in row.items() if name not in RUN_ONLY_FIELDS}


def read_manifest(store: Store, campaign: str) -> dict[str, dict]:
    """The campaign's manifest rows by path: none if there is no manifest or it is torn; raises
    ``ValueError`` naming the file if it is something else."""
    key = manifest_key(campaign)
    data = store.get(key) if store.exists(key) else b"[]"
    try:
        stored = parse_document(data, Manifest, store.location(key))
    except DocumentError as exc:
        if not _torn(data, exc):
            raise ValueError(f"{store.location(key)} is not a brandbatch manifest (a JSON list of rows with a "
                             f"'path'): {exc}; move it away to start a new one") from None
        return {}  # rebuilt from the rows of this run: the export stage gives them for every approved variant
    return {row.path: row.model_dump(exclude_unset=True) for row in stored.root}


def withdrawal_note(before: Mapping[str, dict], after: Mapping[str, dict]) -> str:
    """One line when export files of ``before`` (the manifest rows before a run or export) are
    gone from ``after``: their approvals were withdrawn and ``write_manifests`` deleted them; ""
    when none were."""
    gone = [row for path, row in before.items() if path not in after]
    if not gone:
        return ""
    variants = len({(row["asset_id"], row["variant"]) for row in gone})
    files = f"{len(gone)} export file{'s' * (len(gone) != 1)}"
    return (f"withdrawn: {files} of {variants} asset variant{'s' * (variants != 1)} "
            f"{'were' if len(gone) != 1 else 'was'} deleted because their approval "
            "no longer holds (their inputs changed, so they wait for review again, or their rows left the sheet); "
            "to try changes without touching published exports, run with another --out")


def write_manifests(store: Store, campaign: str, rows: Iterable[dict],
                    approved: Collection[tuple[str, int]] | None = None) -> list[dict]:
    """Merge ``rows`` over the campaign's existing manifest (by path), write JSON + CSV; returns
    the merged rows. With ``approved`` (the (asset_id, variant) pairs approved now), earlier
    rows of anything else are withdrawn: their files are deleted and their rows dropped. So are
    the earlier files of a placement ``rows`` say a designer rejected (``status: rejected``), and
    earlier rejection rows of the variants in ``rows`` that no longer say so (restored)."""
    merged = read_manifest(store, campaign)
    given = {(row["asset_id"], row["variant"]) for row in rows}
    rejected = {(row["asset_id"], row["variant"], row["placement"]) for row in rows if row.get("status") == "rejected"}
    for path, row in list(merged.items()):
        gone = approved is not None and (row["asset_id"], row["variant"]) not in approved
        withdrawn = (row["asset_id"], row["variant"], row.get("placement")) in rejected
        restored = row.get("status") == "rejected" and (row["asset_id"], row["variant"]) in given
        if gone or withdrawn or restored:
            store.delete(path)
            del merged[path]
    merged.update((row["path"], manifest_row(row)) for row in rows)
    ordered = [merged[path] for path in sorted(merged)]
    store.put(manifest_key(campaign), manifest_json(ordered), content_type="application/json", overwrite=True)
    store.put(manifest_csv_key(campaign), manifest_csv(ordered), content_type="text/csv; charset=utf-8",
              overwrite=True)
    return ordered
