"""store/keys.py is the only module that spells a store key, and it spells them as they always were."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

from store import keys
from tests.source_literals import REPO, literals_matching

# a piece of each key format, as it appears in a string literal that spells it
KEY_PARTS = re.compile(r"renders/|qa/|shards/|upscaled/|previews/|/runs|runs/|/exports/|assets\.json|dead-letters\.json"
                       r"|manifest\.json|manifest\.csv|report\.html(?!\.j2)|launch\.json|\.run\.lock|run\.lease"
                       r"|report-plan\.json|publish\.json"
                       r"|/interrupted|review-log|/logs")


def key_spellings(root: Path) -> list[str]:
    """Every literal outside store/keys.py that holds a piece of a key format."""
    return literals_matching(root, KEY_PARTS, "store/keys.py")


def test_no_module_but_store_keys_spells_a_store_key():
    assert key_spellings(REPO) == []


def test_the_check_finds_a_key_spelled_elsewhere(tmp_path: Path):
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "x.py").write_text('"""Reads qa/<key>.json."""\n\ndef k(j):\n    return f"qa/{j}.json"\n',
                                          encoding="utf-8")
    assert key_spellings(tmp_path) == ["qa/x.py:4: 'qa/'"]


def test_keys_are_the_layout_outputs_have_always_had():
    job = "ab" * 32
    assert keys.render_key(job) == f"renders/{job}.png" and keys.sidecar_key(job) == f"renders/{job}.json"
    assert keys.qa_key(job) == f"qa/{job}.json" and keys.checks_key(job) == f"qa/checks/{job}.json"
    assert keys.embedding_key("ViT-B-32@random", job) == f"qa/embeddings/ViT-B-32@random/{job}.npy"
    assert keys.shard_report_key("f00d") == "shards/f00d.json"
    assert keys.preview_key(job) == f"previews/{job}.png" and keys.preview_record_key(job) == f"previews/{job}.json"
    assert keys.upscaled_key("cd" * 32, "brandbatch/tiny-esrgan@0123456789abcdef") == (
        "upscaled/" + hashlib.sha256(f"brandbatch-upscaled-v1|{'cd' * 32}|brandbatch/tiny-esrgan@0123456789abcdef"
                                     .encode()).hexdigest() + ".png")
    assert keys.thumbnail_key(f"render:{job}", 128, 75) == (
        "thumbnails/" + hashlib.sha256(f"brandbatch-thumbnail-v1|render:{job}|128|75".encode()).hexdigest() + ".jpg")
    assert keys.assets_key("spring") == "spring/assets.json"
    assert keys.dead_letters_key("spring") == "spring/dead-letters.json"
    assert keys.runs_prefix("spring") == "spring/runs"
    assert (keys.run_record_key("spring", "2026-11-23T01:00:00+00:00", "1234abcd-0000-ffff")
            == "spring/runs/20261123T010000Z-1234abcd0000.json")
    assert keys.run_record_key("spring", "2026-11-23T01:00:00+00:00", "--") == "spring/runs/20261123T010000Z-run.json"
    assert keys.export_key("spring", "meta.stories", "tent-01", 1, "webp") == "spring/exports/meta.stories/tent-01.webp"
    assert keys.export_name("tent-01", 1) == "tent-01" and keys.export_name("tent-01", 3) == "tent-01-v3"
    assert (keys.export_key("spring", "meta.stories", "tent-01", 2, "jpg")
            == "spring/exports/meta.stories/tent-01-v2.jpg")
    assert keys.manifest_key("spring") == "spring/manifest.json"
    assert (keys.log_key("spring", "run", dt.datetime(2026, 11, 23, 1, 2, 3, 4, tzinfo=dt.timezone.utc))
            == "spring/logs/run-20261123T010203000004Z.log") and keys.logs_prefix("spring") == "spring/logs"
    assert keys.manifest_csv_key("spring") == "spring/manifest.csv"
    assert keys.report_key("spring") == "spring/report.html"
    assert keys.exports_prefix("spring") == "spring/exports"
    assert keys.report_plan_key("spring") == "spring/report-plan.json"
    assert keys.publish_key("spring") == "spring/publish.json"
    assert keys.launch_key("spring") == "spring/launch.json"
    assert keys.run_lock_key("spring") == "spring/.run.lock" and keys.run_lease_key("spring") == "spring/run.lease"
    assert (keys.interrupted_key("spring", "20261130T170000123456Z", 42)
            == "spring/interrupted/20261130T170000123456Z-42.json")
    assert keys.review_log_prefix() == "review-log" and keys.review_log_prefix("spring") == "review-log/spring"
    assert keys.review_log_key("spring", "ab12", 3) == "review-log/spring/ab12/000003.json"
