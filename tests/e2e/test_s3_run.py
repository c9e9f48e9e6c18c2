"""A whole campaign run to ``s3://`` on a real SeaweedFS server; a rerun uploads no file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from store import open_store
from tests.conftest_s3 import s3_out, seaweedfs  # noqa: F401  (fixtures)
from tests.e2e.test_campaign_run import brandbatch

pytestmark = pytest.mark.slow


def test_run_to_s3_then_rerun_changes_nothing(s3_out, tmp_path: Path, repo: Path, prefect_home: Path,  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BRANDBATCH_REVIEW_DB", f"sqlite:///{tmp_path / 'review.sqlite3'}")
    shutil.copy(repo / "campaigns" / "spring-launch.csv", tmp_path / "spring-launch.csv")
    shutil.copytree(repo / "campaigns" / "packshots", tmp_path / "packshots")  # bottle-06's product_image
    first = brandbatch("run", "spring-launch.csv", "--out", s3_out, "--formats", "webp,upload", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"manifest: {s3_out}/spring-launch/manifest.json" in first.stdout
    store = open_store(s3_out)
    manifest = json.loads(store.get("spring-launch/manifest.json"))
    assert manifest and all(store.exists(row["path"]) for row in manifest)
    assert not list(tmp_path.glob("out"))  # nothing went to a local folder
    client, bucket = store.client, store.bucket
    before = {o["Key"]: (o["ETag"], o["LastModified"])
              for o in client.list_objects_v2(Bucket=bucket)["Contents"]}

    second = brandbatch("run", "spring-launch.csv", "--out", s3_out, "--formats", "webp,upload", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(0 rendered, 12 already there" in second.stdout
    after = {o["Key"]: (o["ETag"], o["LastModified"])
             for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    changed = {k for k in after if after[k] != before.get(k)}
    # Only the documents that are rewritten on every run (same bytes) may be touched.
    assert all(k.endswith(("manifest.json", "manifest.csv", "report.html", "assets.json")) or "/qa/" in f"/{k}"
               for k in changed), sorted(changed)
    assert not any("/exports/" in k or "renders/" in k for k in changed)
