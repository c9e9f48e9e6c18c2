"""bench/common.py's machine-wide CPU seconds, with which bench/overlap.py tells whether the
streaming flow adds work or only waits: busy time only, and the work of processes that are not
the caller's children (fork-server workers) counted."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from bench.common import busy_cpu_seconds

# /proc/stat's first line: cpu user nice system idle iowait irq softirq steal guest guest_nice
STAT = "cpu  1000 20 300 90000 500 7 11 4000 0 0\ncpu0 500 10 150 45000 250 3 5 2000 0 0\nintr 1 2 3\n"


def test_counts_user_nice_system_irq_and_softirq_only(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text(STAT, encoding="ascii")
    # idle (90000), I/O wait (500) and steal (4000: the hypervisor ran other machines) are not work done here
    assert busy_cpu_seconds(stat) == pytest.approx((1000 + 20 + 300 + 7 + 11) / os.sysconf("SC_CLK_TCK"))


def test_none_without_proc_stat(tmp_path: Path):
    assert busy_cpu_seconds(tmp_path / "missing") is None


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux's /proc/stat is needed")
def test_counts_the_work_of_a_fork_server_worker():
    """A fork server's worker is not this process's child (getrusage(RUSAGE_CHILDREN) misses it)."""
    context = multiprocessing.get_context("forkserver")
    before = busy_cpu_seconds()
    worker = context.Process(target=_spin, args=(0.5,))
    worker.start()
    worker.join()
    after = busy_cpu_seconds()
    assert worker.exitcode == 0
    assert before is not None and after is not None
    assert after - before >= 0.45  # the worker's 0.5 s (clock ticks: 10 ms), and anything else that ran
