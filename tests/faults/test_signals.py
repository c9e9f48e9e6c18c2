"""SIGTERM or SIGINT to `brandbatch run` ends every child process it started (Prefect's temporary
server, pool workers) and marks the run; a write cut short by a killed process leaves only a
temp file, which the next run removes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from store import LocalStore, open_store
from store.locks import campaign_lock

pytestmark = pytest.mark.slow


def _sheet(path: Path, rows: int) -> None:
    lines = ["asset_id,style,product,scene,placements"]
    lines += [f"item-{n:02d},acme@2,a green tent {n},a lakeside meadow,meta.feed.square" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_every_child_and_marks_the_run(tmp_path: Path, prefect_home: Path, signum: int) -> None:
    _sheet(tmp_path / "camp.csv", 40)
    exe = Path(sys.executable).with_name("brandbatch")
    run = subprocess.Popen([str(exe), "run", "camp.csv", "--out", "out", "--no-progress"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        parent = psutil.Process(run.pid)
        deadline = time.monotonic() + 240
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and run.poll() is None:  # Prefect's server is up and rendering began
            children = parent.children(recursive=True)
            if children and list((tmp_path / "out" / "renders").glob("*.png")):
                break
            time.sleep(0.2)
        assert run.poll() is None and children, "the run ended before it could be interrupted"
        run.send_signal(signum)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 1, err
    name = signal.Signals(signum).name
    assert f"run of camp interrupted by {name}" in err, err
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"left running: {[(c.pid, c.cmdline()[:3]) for c in survivors]}"
    [mark] = (tmp_path / "out" / "camp" / "interrupted").glob("*.json")
    record = json.loads(mark.read_text(encoding="utf-8"))
    assert record["signal"] == name and record["pid"] == run.pid and record["children_ended"]
    with campaign_lock(open_store(str(tmp_path / "out")), "camp"):  # and the lock is free again
        pass


def _write_and_hang(root: str, ready) -> None:
    """A real LocalStore write whose process dies before the file is in place."""
    def hang(_fd: int) -> None:
        ready.set()
        time.sleep(600)
    os.fsync = hang
    LocalStore(root).put("renders/abc.png", b"x" * 100_000)


def test_a_killed_write_leaves_a_temp_file_the_next_run_removes(tmp_path: Path) -> None:
    root = tmp_path / "out"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer = context.Process(target=_write_and_hang, args=(str(root), ready))
    writer.start()
    assert ready.wait(60)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    left = [p for p in (root / "renders").iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".abc.png.") and not (root / "renders" / "abc.png").exists()
    mine = root / "renders" / f".def.png.{os.getpid()}.x1y2z3w4.tmp"  # a write in flight in a live process
    mine.write_bytes(b"in flight")
    assert LocalStore(root).clean_temp_files() == [str(left[0])]
    assert mine.exists() and not left[0].exists()
