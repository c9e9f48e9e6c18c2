"""bench/export_placements.py's timing: the CPU-time figures are CPU time, not wall time, so the
overhead ratio it prints holds on a loaded machine."""

from __future__ import annotations

import time

from bench.export_placements import interleaved_best


def test_cpu_time_counts_work_and_not_waiting():
    def spin(_: None) -> None:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass

    wall, cpu = interleaved_best(2, {"sleep": (lambda: None, lambda _: time.sleep(0.05)), "spin": (lambda: None, spin)})
    assert wall["sleep"] >= 0.05 and cpu["sleep"] < 0.01  # waiting takes wall time and no CPU
    assert cpu["spin"] >= 0.05 and wall["spin"] >= cpu["spin"] * 0.99


def test_setup_is_not_timed():
    wall, cpu = interleaved_best(1, {"run": (lambda: time.sleep(0.1), lambda _: None)})
    assert wall["run"] < 0.05 and cpu["run"] < 0.05
