"""The local store's disk fills up mid-run: a clear error, nothing corrupt left, rerun completes.

The disk is a real 96 KiB tmpfs (needs root to mount; skipped with the reason otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.render.jobs import make_job

from render.stage import render_missing, stored_render_problem
from store import LocalStore, StoreError


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk))
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_disk_full_stops_the_run_clearly_leaves_nothing_corrupt_and_a_rerun_completes(small_disk):
    store = LocalStore(small_disk / "out")
    jobs = [make_job(i, width=64, height=64, steps=1) for i in range(12)]
    with pytest.raises(StoreError) as failure:
        render_missing(jobs, store, batch_size=2)
    assert f"cannot write {small_disk}/out/renders/" in str(failure.value)
    assert "No space left on device (nothing was left half-written)" in str(failure.value)

    files = sorted(p for p in (small_disk / "out").rglob("*") if p.is_file())
    assert files and not [p.name for p in files if p.name.startswith(".") or p.suffix not in (".png", ".json")]
    for path in files:
        if path.suffix == ".json":
            assert json.loads(path.read_bytes())["job_key"] == path.stem  # whole, or not there at all
    stored = [job for job in jobs if (small_disk / "out/renders" / f"{job.key}.png").exists()]
    assert 0 < len(stored) < len(jobs)
    assert all(stored_render_problem(store, job) == "" for job in stored)

    assert _mount("-o", "remount,size=4m", str(small_disk)).returncode == 0
    rerun = render_missing(jobs, store, batch_size=2)
    assert rerun.failed == [] and rerun.damaged == {}
    assert sorted(rerun.cached) == sorted(job.key for job in stored)
    assert all(stored_render_problem(store, job) == "" for job in jobs)
