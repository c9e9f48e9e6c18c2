"""`brandbatch review` for a newcomer: it says which address to open, a taken port or an
``--out`` where nothing ran is one stderr line and exit 1 (not a traceback, not an empty
queue), and the example campaign puts work in the queue."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from exports.assemble import plan_settings
from plan.planner import plan_campaign
from plan.sheet import read_sheet
from plan.styles import StyleLibrary
from qa.verdicts import in_spot_check
from review.app import listen, open_url
from review.queue import ReviewError

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"BRANDBATCH_REVIEWER_TOKENS": "dana:" + "d" * 32}


def brandbatch(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("brandbatch")), *args]


def _env() -> dict[str, str]:
    return {**os.environ, **TOKENS, "COLUMNS": "200"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_out_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = subprocess.run(brandbatch("review", "--out", "nowhere", "--port", str(_free_port())),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert "--out nowhere: no such folder" in done.stderr and "brandbatch run SHEET --out nowhere" in done.stderr
    assert not (tmp_path / "nowhere").exists()  # nothing was created where nothing ran


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(brandbatch("review", "--out", "out", "--port", str(port)),
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def test_review_prints_the_address_to_open_and_serves_it(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    port = _free_port()
    proc = subprocess.Popen(brandbatch("review", "--out", "out", "--port", str(port)),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        first = proc.stdout.readline()
        assert f"open http://127.0.0.1:{port}/ " in first, first + proc.stderr.read() if proc.poll() else first
        assert "BRANDBATCH_REVIEWER_TOKENS" in first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()


def test_no_address_is_printed_when_the_app_cannot_start(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    env = {k: v for k, v in _env().items() if k not in ("BRANDBATCH_REVIEWER_TOKENS", "BRANDBATCH_REVIEWERS_FILE")}
    done = subprocess.run(brandbatch("review", "--out", "out", "--port", str(_free_port())),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "no reviewers configured" in done.stderr, done.stdout + done.stderr
    assert "http://" not in done.stdout


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:8765/"),
                                           ("0.0.0.0", "http://127.0.0.1:8765/"),
                                           ("::1", "http://[::1]:8765/"),
                                           ("localhost", "http://localhost:8765/")])
def test_open_url_names_an_address_a_browser_reaches(host: str, url: str) -> None:
    assert open_url(host, 8765) == url


def test_listen_refuses_a_file_as_out(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ReviewError, match="no such folder"):
        listen(str(tmp_path / "out"), "127.0.0.1", 0)
    with listen(str(tmp_path), "127.0.0.1", 0) as sock:
        assert sock.getsockname()[1] > 0


def test_example_campaign_puts_work_in_the_review_queue() -> None:
    """`make run` then `brandbatch review` shows work: the example style's spot-check sample
    takes a few of the example campaign's variants, and leaves the others to export."""
    settings, _ = plan_settings(str(REPO / "styles"))
    plan = plan_campaign(read_sheet(REPO / "campaigns" / "spring-launch.csv"), settings)
    library = StyleLibrary(REPO / "styles")
    sampled = {(job.row_key, job.variant) for job in plan.jobs
               if in_spot_check(job.key, library.get(job.style, job.style_version).qa.review_sample_rate)}
    variants = {(job.row_key, job.variant) for job in plan.jobs}
    assert sorted(sampled) == [("boots-05", 1), ("tent-02", 1)]  # as docs/review.md says
    assert variants - sampled, "something still exports without a designer"
