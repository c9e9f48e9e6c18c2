"""Dead letters through the installed command: a budget stop leaves failed jobs in
``dead-letters.json``; ``--retry-failed`` renders exactly those, and the list empties."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.e2e.test_campaign_run import brandbatch

pytestmark = pytest.mark.slow


def renders(out: Path) -> set[str]:
    return {p.stem for p in (out / "renders").glob("*.png")}


def artifacts(prefect_home: Path) -> dict[str, tuple[str, str]]:
    """key -> (type, data) of the newest artifact per key in the local Prefect server's database."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute("SELECT key, type, data FROM artifact WHERE key IS NOT NULL ORDER BY created").fetchall()
    return {key: (kind, data) for key, kind, data in rows}


def test_failed_jobs_are_dead_lettered_and_retried_alone(tmp_path: Path, repo: Path, prefect_home: Path):
    shutil.copy(repo / "campaigns" / "spring-launch.csv", tmp_path / "spring-launch.csv")
    shutil.copytree(repo / "campaigns" / "packshots", tmp_path / "packshots")  # bottle-06's product_image
    out, campaign = tmp_path / "out", tmp_path / "out" / "spring-launch"

    first = brandbatch("run", "spring-launch.csv", "--out", "out", "--limit", "2", "--max-images", "1",
                       "--formats", "webp", cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    letters = json.loads((campaign / "dead-letters.json").read_text(encoding="utf-8"))["dead_letters"]
    assert letters and {x["reason"] for x in letters} == {"budget"}
    assert {x["asset_id"] for x in letters} <= {"trail-pack-01", "tent-02"}
    assert all(x["attempts"] == 1 and "max_images=1" in x["message"] for x in letters)
    assert f"dead letters: {len(letters)} jobs" in first.stdout and "--retry-failed" in first.stdout
    assert len(renders(out)) == 1 and not {x["job_key"] for x in letters} & renders(out)
    (record,) = [json.loads(p.read_text(encoding="utf-8")) for p in (campaign / "runs").glob("*.json")]
    assert (record["rendered"], record["failed"], record["mode"]) == (1, {"budget": len(letters)}, "run")

    found = artifacts(prefect_home)
    assert found["progress-spring-launch"][0] == "progress" and float(found["progress-spring-launch"][1]) == 100
    assert found["metrics-spring-launch"][0] == "markdown" and "| GPU-seconds |" in found["metrics-spring-launch"][1]
    assert letters[0]["job_key"][:12] in found["dead-letters-spring-launch"][1]
    assert found["runs-spring-launch"][0] == "table"

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
