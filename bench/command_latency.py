"""Command latency: ``export`` with nothing to do and a cached ``run``, next to ``validate``.

    .venv/bin/python bench/command_latency.py [--sheet campaigns/spring-launch.csv] [--repeat 3]

The example sheet (with its folder: the files its rows name) is run once into a fresh output folder (rendering with the tiny models,
outside the timings); then, alternating so machine load hits each the same, each of
``brandbatch validate SHEET``, ``brandbatch export CAMPAIGN`` (everything already exported) and
``brandbatch run SHEET`` (everything already rendered, checked and exported) runs ``--repeat``
times as a fresh process, imports included. The median wall time of each is reported with its
ratio to ``validate``'s (the baseline: the fixed cost of reading the sheet and the styles).
Goal: each <= 1.5x ``validate``. Python writes and uses its bytecode caches (``__pycache__``), as
for any installed command (``$PYTHONDONTWRITEBYTECODE`` is dropped: with it, each command compiles
every module it imports from source each time, ~0.2-0.3 s more for ``run`` than for ``validate``).
No Prefect server is configured (``PREFECT_API_URL`` unset),
as on a laptop or in cron without one; with one, Prefect records the flow runs and the commands
take longer by the server's round trips.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Row, at_most, report  # noqa: E402

GOAL_RATIO = 1.5


def brandbatch(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``brandbatch`` command in a fresh process; exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"`brandbatch {' '.join(args)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", default=str(REPO / "campaigns" / "spring-launch.csv"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median reported)")
    args = parser.parse_args(argv)
    source = Path(args.sheet)
    campaign = source.stem
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp) / "campaign"
        shutil.copytree(source.parent, work)  # the sheet with the files its rows name (packshots, logos)
        # bytecode caches as an installed command has them (the first, untimed run writes any missing):
        # with $PYTHONDONTWRITEBYTECODE set, every command would compile its modules again each time
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PYTHONDONTWRITEBYTECODE")}
        env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(work / "prefect-home"))
        commands = {
            "validate": ["validate", source.name],
            "export": ["export", campaign, "--out", "out"],
            "run": ["run", source.name, "--out", "out", "--no-progress"],
        }
        first = time.perf_counter()
        brandbatch(commands["run"], work, env)  # renders, checks, exports: everything later is cached
        first = time.perf_counter() - first
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                wall, cpu = brandbatch(command, work, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    rows = [Row("`validate` (the baseline)", wall["validate"], "s", wall["validate"])]
    for name, label in (("export", "`export` with nothing to do"), ("run", "cached `run` (nothing to render)")):
        ratio = wall[name] / wall["validate"]
        rows.append(Row(f"{label}: wall time", wall[name], "s", wall["validate"], goal=f"<= {GOAL_RATIO:g}x validate",
                        met=at_most(ratio, GOAL_RATIO)))
        rows.append(Row(f"{label}: CPU time (user + system)", cpu[name], "s", cpu["validate"]))
    report("Command latency", rows,
           setup=f"`bench/command_latency.py --repeat {args.repeat}` on `{source.name}` (the example sheet; its first "
                 f"run, {first:.0f} s with rendering, outside the timings): median of {args.repeat} fresh processes "
                 "each, the three commands alternating, with bytecode caches; no Prefect server configured.",
           baseline="`brandbatch validate` on the same sheet, in the same alternation (reads the sheet, styles, "
                    "placements and templates; renders nothing).",
           notes=["all wall times: " + "; ".join(f"{name} " + ", ".join(f"{v:.2f}" for v in values)
                                                  for name, values in walls.items()) + " s"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
