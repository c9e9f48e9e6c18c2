"""Dead letters through the installed command: a budget stop leaves failed jobs in
``dead-letters.json``; ``--retry-failed`` renders exactly those, and the list empties."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.e2e.test_campaign_run import brandbatch

pytestmark = pytest.mark.slow


def renders(out: Path) -> set[str]:
    return {p.stem for p in (out / "renders").glob("*.png")}


def test_failed_jobs_are_dead_lettered_and_retried_alone(tmp_path: Path, repo: Path):
    shutil.copy(repo / "campaigns" / "spring-launch.csv", tmp_path / "spring-launch.csv")
    shutil.copytree(repo / "campaigns" / "packshots", tmp_path / "packshots")  # bottle-06's product_image
    out, campaign = tmp_path / "out", tmp_path / "out" / "spring-launch"

    first = brandbatch("run", "spring-launch.csv", "--out", "out", "--limit", "2", "--max-images", "1",
                       "--formats", "webp", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr  # a budget stop is planned, not a failure
    letters = json.loads((campaign / "dead-letters.json").read_text(encoding="utf-8"))["dead_letters"]
    assert letters and {x["reason"] for x in letters} == {"budget"}
    assert {x["asset_id"] for x in letters} <= {"trail-pack-01", "tent-02"}
    assert all(x["attempts"] == 1 and "max_images=1" in x["message"] for x in letters)
    assert f"stopped by the budget: {len(letters)} render jobs" in first.stdout
    assert "dead letters:" not in first.stdout  # they wait for the budget; nothing failed
    assert len(renders(out)) == 1 and not {x["job_key"] for x in letters} & renders(out)
    (record,) = [json.loads(p.read_text(encoding="utf-8")) for p in (campaign / "runs").glob("*.json")]
    assert (record["rendered"], record["failed"], record["mode"]) == (1, {"budget": len(letters)}, "run")

    retry = brandbatch("run", "spring-launch.csv", "--out", "out", "--retry-failed", "--formats", "webp",
                       cwd=tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert f"({len(letters)} rendered, 0 already there, 0 failed)" in retry.stdout, retry.stdout
    assert not (campaign / "dead-letters.json").exists()
    assert renders(out) >= {x["job_key"] for x in letters}
    assert len(renders(out)) == 1 + len(letters), "rows outside the dead letters were not rendered"
    assert "dead letters:" not in retry.stdout

    report = (campaign / "report.html").read_text(encoding="utf-8")
    assert "<h2>Campaign metrics</h2>" in report and "retry-failed" in report
    assert "None: every planned job that was tried has rendered." in report
    assert len(list((campaign / "runs").glob("*.json"))) == 2
