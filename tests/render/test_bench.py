"""The render benchmarks run (tiny sizes, CPU): the GPU one with --tiny, the CPU one on 4 jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_gpu_benchmark_runs_tiny_on_cpu():
    out = run_bench("bench/render_gpu.py", "--tiny", "--images", "2")
    assert "| 1 | off |" in out and "| 2 | off |" in out
    assert "throughput ratio brandbatch/bare = " in out and "failed" not in out
    assert "| expand stage: seconds per expansion (2 to 9:16 and 1.91:1), vs per master |" in out
    assert "| upscale stage: seconds per 128 px master upscaled x4 (tiny upscaler) |" in out


def test_cpu_benchmark_runs_on_a_small_sheet():
    out = run_bench("bench/render_cpu.py", "--rows", "1", "--no-flow")
    assert out.startswith("4 jobs (1 rows x 2 variants x 2 aspects)")
    assert "| render_missing (batch-invariant) vs bare per-image loop |" in out
    assert "| render_missing (batch_invariant=False, 4) vs bare batches of 4 |" in out


def test_family_benchmark_compares_a_family_with_independent_renders():
    out = run_bench("bench/families.py", "--rows", "1")
    assert "| 1 families (master + 3 expansions each) vs 4 independent renders, seconds |" in out
    assert "the families' images hold" in out
