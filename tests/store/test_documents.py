"""Stored documents: files written before the artefact layer still read, every document is
versioned, and one that does not parse is an error naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from store import documents
from store.documents import (AssetSnapshot, CampaignLaunch, CheckShardReport, DeadLetters, DocumentError,
                             InterruptedRun, KeptFindings, Manifest, ManifestRow, PreviewRecord, PublishRecord,
                             QAResultRecord, RenderSidecar, ReportPlan, RunRecord, ShardReport,
                             parse_document, read_document, write_document)
from store.local import LocalStore

JOB = "ab" * 32
# Files as brandbatch wrote them before store/documents.py existed (no schema_version).
LEGACY = {
    RenderSidecar: {"campaign": "spring", "row_key": "a", "job_key": JOB, "seconds": 0.5, "device": "cpu"},
    QAResultRecord: {"job_key": JOB, "verdict": "review", "reasons": ["sampled"], "scores": {"a": None, "b": 0.3},
                     "details": {}},
    KeptFindings: {"fingerprint": "f", "dhash": 12, "findings": [["blank", {"fail": [], "review": [], "scores":
                                                                           {"std": 3.5}, "details": {}}]]},
    ShardReport: {"flow_run_id": "f00d", "node": "gpu-1", "report": {
        "rendered": [JOB], "cached": [], "failed": [{"job_key": "c", "reason": "oom", "message": "m"}],
        "gpu_seconds": 1.5, "job_seconds": {JOB: 1.5}, "damaged": {}}},
    DeadLetters: {"format": 1, "campaign": "spring", "dead_letters": [{
        "job_key": JOB, "asset_id": "a", "row": 2, "variant": 1, "aspect": "1:1", "reason": "oom", "message": "m",
        "attempts": 2, "first_failed": "2026-11-23T01:00:00+00:00", "last_failed": "2026-11-24T01:00:00+00:00"}]},
    RunRecord: {"campaign": "spring", "run_id": "r1", "mode": "run", "started": "2026-11-23T01:00:00+00:00",
                "wall_seconds": 3.0, "render_seconds": 2.0, "jobs": 2, "rendered": 2, "cached": 0, "failed": {},
                "gpu_seconds": 2.0, "image_seconds": [1.0, 1.0], "rows_valid": 1, "rows_blocked": 0,
                "rows_banned": 0, "verdicts": {"pass": 2}},  # export_failed came later: defaults to 0
}


def _documents() -> list[type[documents.Document]]:
    return [cls for cls in vars(documents).values()
            if isinstance(cls, type) and issubclass(cls, documents.Document) and cls is not documents.Document]


def test_every_document_is_versioned_and_has_a_legacy_example():
    assert set(_documents()) == set(LEGACY) | {AssetSnapshot, CampaignLaunch, InterruptedRun, ReportPlan,
                                               PublishRecord, PreviewRecord, CheckShardReport}  # new: no legacy files
    assert all("schema_version" in cls.model_fields for cls in _documents())


@pytest.mark.parametrize("model", list(LEGACY), ids=lambda m: m.__name__)
def test_legacy_files_read_as_version_1_and_round_trip(model):
    doc = parse_document(json.dumps(LEGACY[model]).encode(), model, "x.json")
    assert doc.schema_version == 1
    assert parse_document(documents.dump_document(doc), model, "x.json") == doc
    written = json.loads(documents.dump_document(doc))
    added = ({"export_failed"} if model is RunRecord else {"sha256"} if model is RenderSidecar
             else {"product_render", "family_renders"} if model is KeptFindings else set())
    assert set(written) - {"schema_version"} == set(LEGACY[model]) | added  # the field names files always had


def test_dead_letters_keep_their_version_field_name():
    doc = parse_document(json.dumps(LEGACY[DeadLetters]).encode(), DeadLetters, "x")
    assert json.loads(documents.dump_document(doc))["format"] == 1  # older readers check "format"
    with pytest.raises(DocumentError, match=r"format: Input should be 1"):
        parse_document(json.dumps(LEGACY[DeadLetters] | {"format": 2}).encode(), DeadLetters, "x")


def test_a_legacy_asset_snapshot_is_the_bare_mapping():
    legacy = {"a1": {"row": 2, "placements": ["meta.stories"], "alt_text": "tent", "headline": "Go",
                     "cta": "Buy", "overlay": {"weight": 700}, "focal": [0.25, 0.75], "logo": ""}}
    snapshot = parse_document(json.dumps(legacy).encode(), AssetSnapshot, "x")
    assert snapshot.assets["a1"].focal == (0.25, 0.75) and snapshot.assets["a1"].overlay == {"weight": 700}
    again = parse_document(documents.dump_document(snapshot), AssetSnapshot, "x")
    assert again == snapshot and json.loads(documents.dump_document(snapshot))["schema_version"] == 1


def test_a_document_that_does_not_parse_names_the_file_the_field_and_what_to_do(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("spring/runs/r.json", json.dumps(LEGACY[RunRecord] | {"mode": "nightly"}).encode())
    with pytest.raises(DocumentError) as caught:
        read_document(store, "spring/runs/r.json", RunRecord)
    assert str(caught.value) == (f"{tmp_path / 'spring/runs/r.json'}: not a valid RunRecord document (mode: Input "
                                 f"should be 'run' or 'retry-failed'); fix or delete the file")
    assert not caught.value.unparsable
    store.put("torn.json", b'{"campaign": "spr')
    with pytest.raises(DocumentError, match="torn.json: not a valid RunRecord document") as caught:
        read_document(store, "torn.json", RunRecord)
    assert caught.value.unparsable
    store.put("extra.json", json.dumps(LEGACY[RunRecord] | {"surprise": 1}).encode())
    with pytest.raises(DocumentError, match=r"surprise: Extra inputs are not permitted"):
        read_document(store, "extra.json", RunRecord)
    with pytest.raises(FileNotFoundError):
        read_document(store, "absent.json", RunRecord)


def test_write_then_read_and_documents_are_frozen(tmp_path: Path):
    store = LocalStore(tmp_path)
    doc = parse_document(json.dumps(LEGACY[ShardReport]).encode(), ShardReport, "x")
    assert write_document(store, "shards/f00d.json", doc) is True
    assert read_document(store, "shards/f00d.json", ShardReport) == doc
    assert write_document(store, "shards/f00d.json", doc, overwrite=False) is False
    with pytest.raises(pydantic.ValidationError):
        doc.node = "other"


def test_manifest_rows_declare_every_manifest_field_in_sorted_order():
    from exports.manifest import JSON_ONLY_FIELDS, MANIFEST_FIELDS

    assert list(ManifestRow.model_fields) == sorted((*MANIFEST_FIELDS, *JSON_ONLY_FIELDS))


def test_manifest_rows_come_back_as_given_with_sorted_keys():
    rows = [{"path": "c/exports/p/a.webp", "asset_id": "é", "variant": 1, "bytes": 10, "upscale": 1.0,
             "seed": None, "status": "exported", "a_later_field": "kept"}]
    data = documents.dump_document(Manifest.model_validate(rows), indent=2, exclude_unset=True)
    assert [r.model_dump(exclude_unset=True) for r in parse_document(data, Manifest, "m").root] == rows
    legacy = {k: v for k, v in rows[0].items() if k != "a_later_field"}
    assert (documents.dump_document(Manifest.model_validate([legacy]), indent=2, exclude_unset=True)
            == (json.dumps([legacy], indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


def test_a_check_shard_report_round_trips_with_its_manifest_rows():
    row = {"path": "spring/exports/meta.feed.square/a.webp", "status": "exported", "upscale": 1.5, "bytes": 10,
           "export_inputs": {"render": "ab"}, "overrides": {"headline": {"before": "x", "after": "y", "by": "dana"}}}
    doc = documents.CheckShardReport(
        flow_run_id="f00d", node="cpu-1", checked={"a": [JOB]},
        results=[QAResultRecord(job_key=JOB, verdict="pass", reasons=[], scores={"clip": 0.3})],
        exports=[documents.ExportedItemRecord(asset_id="a", variant=1, identity="i" * 64, rows=[row])])
    again = parse_document(documents.dump_document(doc), CheckShardReport, "shards/f00d.json")
    assert again == doc and again.exports[0].rows == [row]
