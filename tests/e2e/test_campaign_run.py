"""Whole runs through the installed ``brandbatch`` command, as marketing runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BAD_SHEET = """asset_id,style,product,scene,variants,placements
good-01,acme@2,trail pack,alpine meadow,1,meta.feed.square
good-01,acme@2,trail pack,alpine meadow,1,meta.feed.square
bad-style,zeta@1,tent,forest,1,
bad-draft,acme@3,tent,forest,1,
bad-number,acme@2,tent,forest,two,
bad-place,acme@2,tent,forest,1,meta.nowhere
bad-empty,acme@2,,forest,1,
bad-banned,acme@2,miracle tent,forest,1,
good-02,acme@2,water bottle,desert road,1,meta.feed.square
"""
EXPECTED_PROBLEMS = [
    (3, "asset_id", "duplicate asset_id"),
    (4, "style", "unknown style 'zeta'"),
    (5, "style", "draft"),
    (6, "variants", "whole number"),
    (7, "placements", "unknown placement 'meta.nowhere'"),
    (8, "product", "empty"),
    (9, "product", "banned term 'miracle'"),
]


# Modules a run that renders, signs and encodes nothing has no use for (tens of ms to seconds each)
UNUSED_BY_A_CACHED_RUN = {"prefect", "torch", "diffusers", "transformers", "open_clip", "scipy", "skimage", "alembic",
                          "c2pa", "cryptography.x509", "xml.sax", "boto3", "numpy.ma"}


def brandbatch(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("brandbatch")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200", **env})


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, repo: Path, prefect_home: Path) -> Path:
    shutil.copy(repo / "campaigns" / "spring-launch.csv", tmp_path / "spring-launch.csv")
    shutil.copytree(repo / "campaigns" / "packshots", tmp_path / "packshots")  # bottle-06's product_image
    (tmp_path / "bad.csv").write_text(BAD_SHEET, encoding="utf-8")
    return tmp_path


def test_validate_prints_one_line_per_problem_and_exits_1(workdir: Path):
    result = brandbatch("validate", "bad.csv", cwd=workdir)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(EXPECTED_PROBLEMS), result.stdout
    for line, (row, column, text) in zip(lines, EXPECTED_PROBLEMS, strict=True):
        assert line.startswith(f"bad.csv:{row}:{column}: "), line
        assert text in line, line


def test_validate_good_sheet_exits_0(workdir: Path):
    result = brandbatch("validate", "spring-launch.csv", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_usage_error_exits_2(workdir: Path):
    assert brandbatch("run", "spring-launch.csv", "--formats", "gif", cwd=workdir).returncode == 2
    assert brandbatch("frobnicate", cwd=workdir).returncode == 2


def test_run_twice_renders_nothing_new_and_writes_identical_files(workdir: Path):
    first = brandbatch("run", "spring-launch.csv", "--out", "out", cwd=workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    campaign = workdir / "out" / "spring-launch"
    manifest = json.loads((campaign / "manifest.json").read_text(encoding="utf-8"))
    assert manifest, "something was exported"
    assert (campaign / "manifest.csv").is_file() and (campaign / "report.html").is_file()
    for row in manifest:
        path = workdir / "out" / row["path"]
        assert path.is_file(), row["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        assert row["path"].startswith(f"spring-launch/exports/{row['placement']}/{row['asset_id']}")
    formats = {row["format"] for row in manifest}
    assert {"webp", "avif"} <= formats and formats & {"jpeg", "png"}
    assert "signed with a DEVELOPMENT credential" in first.stdout
    assert "signed with a DEVELOPMENT credential" in (campaign / "report.html").read_text(encoding="utf-8")
    assert {row["c2pa_credential"] for row in manifest} == {"development"}
    verified = brandbatch("verify", str(campaign / "exports"), cwd=workdir)  # every file of the run
    assert verified.returncode == 0 and verified.stdout.count(": valid (development credential") == len(manifest), \
        verified.stdout + verified.stderr
    before = tree_digest(workdir / "out")

    second = brandbatch("run", "spring-launch.csv", "--out", "out", cwd=workdir, PYTHONPROFILEIMPORTTIME="1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(0 rendered, 12 already there" in second.stdout, second.stdout
    assert tree_digest(workdir / "out") == before
    # nothing is made: what only making, signing or a Prefect server needs is never imported
    imported = {line.rsplit("|", 1)[1].strip() for line in second.stderr.splitlines() if line.startswith("import time:")}
    assert imported and not imported & UNUSED_BY_A_CACHED_RUN, sorted(imported & UNUSED_BY_A_CACHED_RUN)


def test_good_rows_of_a_bad_sheet_still_run(workdir: Path):
    result = brandbatch("run", "bad.csv", "--out", "out", "--formats", "webp", cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.csv:4:style: unknown style 'zeta'" in result.stderr
    manifest = json.loads((workdir / "out" / "bad" / "manifest.json").read_text(encoding="utf-8"))
    assert {row["asset_id"] for row in manifest} <= {"good-01", "good-02"}
    renders = list((workdir / "out" / "renders").glob("*.png"))
    assert len(renders) == 2  # one variant x one aspect for each good row


def test_image_budget_stops_the_run_and_the_next_run_resumes(workdir: Path):
    capped = brandbatch("run", "spring-launch.csv", "--out", "out", "--max-images", "3", "--formats", "webp",
                        cwd=workdir)
    assert capped.returncode == 0, capped.stdout + capped.stderr  # a planned stop, not a failure
    assert "(3 rendered, 0 already there, 0 failed, 9 left for the next run by the budget)" in capped.stdout
    assert "render failed" not in capped.stderr, capped.stderr
    assert "stopped by the budget" not in capped.stderr, capped.stderr  # not an error: on stdout
    stops = [line for line in capped.stdout.splitlines() if line.startswith("stopped by the budget: 9 render jobs")]
    assert len(stops) == 1 and "max_images=3" in stops[0], capped.stdout
    resumed = brandbatch("run", "spring-launch.csv", "--out", "out", "--formats", "webp", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(9 rendered, 3 already there, 0 failed)" in resumed.stdout, resumed.stdout


def test_a_missing_nested_prefect_home_is_created(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    home = workdir / "fresh" / "nested" / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    result = brandbatch("run", "spring-launch.csv", "--out", "out", "--limit", "1", "--formats", "webp", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert home.is_dir()
