"""The command line tells cron the truth: an export file that fails makes `run` and `export`
exit 1 with one line per failure, and a lost review queue stops `run` and `export` with one
line naming the file and the recovery command (no traceback), until `review --rebuild`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from review.queue import ReviewQueue
from tests.e2e.test_campaign_run import brandbatch
from tests.e2e.test_review_export import workdir  # noqa: F401 (fixture: every render waits for review)

pytestmark = pytest.mark.slow


def _decide(workdir: Path, decisions: dict[str, tuple[str, str | None]]) -> None:
    queue = ReviewQueue.for_out(workdir / "out")
    try:
        for item in queue.items("camp"):
            if item.asset_id in decisions:
                decision, reason = decisions[item.asset_id]
                queue.decide(item.id, "dana", decision, reason, expected_version=item.version)
    finally:
        queue.close()


def _manifest(workdir: Path) -> list[dict]:
    return json.loads((workdir / "out" / "camp" / "manifest.json").read_text(encoding="utf-8"))


def test_export_failures_make_run_and_export_exit_1(workdir: Path) -> None:
    # A logo that is good when the sheet is planned and torn by the time it is exported (a shared
    # drive changed under the run): planning checks uploads, so only export can meet this.
    Image.new("RGBA", (64, 32), (200, 40, 40, 255)).save(workdir / "bad-logo.png")
    (workdir / "camp.csv").write_text(
        "asset_id,style,product,scene,placements,logo\n"
        "tent-01,acmereview@1,a green tent,a lakeside meadow,meta.feed.square,\n"
        "boots-02,acmereview@1,hiking boots,a rocky river,meta.feed.square,bad-logo.png\n", encoding="utf-8")
    run = brandbatch("run", "camp.csv", "--out", "out", "--formats", "webp,upload", cwd=workdir)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 render jobs (" not in run.stdout and "render jobs (" in run.stdout
    assert "QA of renders: " in run.stdout and "2 variants waiting for review; 0 export files" in run.stdout
    _decide(workdir, {"tent-01": ("approve", None), "boots-02": ("approve", None)})
    (workdir / "bad-logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # torn after planning

    export = brandbatch("export", "camp", "--out", "out", "--formats", "webp,upload", cwd=workdir)
    assert export.returncode == 1, export.stdout + export.stderr
    failures = [line for line in export.stderr.splitlines() if line.startswith(("export failed:", "no uploadable"))]
    assert sorted(line.split(": ")[1] for line in failures if line.startswith("export failed")) == [
        "camp/exports/meta.feed.square/boots-02.jpg", "camp/exports/meta.feed.square/boots-02.webp"]
    assert all("bad-logo.png" in line for line in failures[:2]), failures
    assert any(line.startswith("no uploadable file: boots-02 v1") for line in failures), failures
    assert "2 export files written or current" in export.stdout, export.stdout
    assert "0 export files held for review, 3 export failures" in export.stdout, export.stdout

    # The next run meets the torn logo at planning: its row is a problem line naming the file
    # (exit 1), not a traceback.
    rerun = brandbatch("run", "camp.csv", "--out", "out", "--formats", "webp,upload", cwd=workdir)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    assert any(line.startswith("camp.csv:3:logo: bad-logo.png") for line in rerun.stderr.splitlines()), rerun.stderr
    assert "Traceback" not in rerun.stderr, rerun.stderr


def test_a_lost_queue_stops_run_and_export_until_rebuilt(workdir: Path) -> None:
    run = brandbatch("run", "camp.csv", "--out", "out", "--formats", "webp", cwd=workdir)
    assert run.returncode == 0, run.stdout + run.stderr
    _decide(workdir, {"tent-01": ("approve", None), "boots-02": ("reject", "off_brand")})
    (workdir / "out" / "review.sqlite3").unlink()
    for extra in ("-wal", "-shm"):
        (workdir / "out" / f"review.sqlite3{extra}").unlink(missing_ok=True)

    for args in (["run", "camp.csv"], ["export", "camp"]):
        stopped = brandbatch(*args, "--out", "out", "--formats", "webp", cwd=workdir)
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert "Traceback" not in stopped.stderr, stopped.stderr
        lines = [line for line in stopped.stderr.splitlines() if "review.sqlite3" in line]
        assert len(lines) == 1 and "`brandbatch review --rebuild --out out`" in lines[0], stopped.stderr
        assert _manifest(workdir) == []  # nothing was exported

    rebuilt = brandbatch("review", "--rebuild", "--out", "out", cwd=workdir)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "2 items rebuilt from the decision log" in rebuilt.stdout, rebuilt.stdout
    export = brandbatch("export", "camp", "--out", "out", "--formats", "webp", cwd=workdir)
    assert export.returncode == 0, export.stdout + export.stderr
    assert [(r["asset_id"], r["approved_by"]) for r in _manifest(workdir)] == [("tent-01", "dana")]
