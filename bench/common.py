"""How every bench script reports: rows of (measurement, value, bare baseline, ratio, goal, met?).

A script builds ``Row``s and calls ``report(...)``: the table is printed as markdown, and when
``$BENCH_RESULTS`` names a file (``bench/run_all.py`` sets it) the section is appended to it as
one JSON line, from which ``run_all`` writes the generated part of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One measured figure. ``ratio`` is value / baseline unless given (e.g. a throughput ratio);
    ``goal`` is the target in words (e.g. "<= 10 s"), ``met`` whether this measurement meets it."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            object.__setattr__(self, "ratio", self.value / self.baseline)


def busy_cpu_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds every process of the machine has used since boot (Linux: user, nice, system,
    irq and softirq time of the ``cpu`` line of /proc/stat; not idle, I/O wait, or time the
    hypervisor gave other machines), or None where there is no /proc/stat. The difference over a
    measurement counts the work of every process it started (process-pool and fork-server workers
    included, which are not this process's children), and of any other process running then."""
    try:
        fields = stat.read_text(encoding="ascii").splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def at_most(value: float, limit: float) -> bool:
    return value <= limit


def at_least(value: float, limit: float) -> bool:
    return value >= limit


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def markdown(rows: Sequence[Row], baseline_label: str) -> str:
    lines = [f"| measurement | value | {baseline_label} | ratio | goal | met |", "|---|---:|---:|---:|---|---|"]
    for row in rows:
        met = "-" if row.met is None else ("**yes**" if row.met else "**no**")
        ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
        lines.append(f"| {row.name} | {_number(row.value, row.unit)} | {_number(row.baseline, row.unit)} | {ratio} "
                     f"| {row.goal or '-'} | {met} |")
    return "\n".join(lines)


def report(section: str, rows: Sequence[Row], *, setup: str, baseline: str, notes: Sequence[str] = ()) -> None:
    """Print the section's table; append it to ``$BENCH_RESULTS`` when that is set.

    ``setup``: what was measured (sizes, settings, repeats); ``baseline``: what the bare
    baseline is, in one sentence ("" when the rows have none); ``notes``: extra lines."""
    print(f"\n## {section}\n\n{setup}\n")
    if baseline:
        print(f"Baseline: {baseline}\n")
    print(markdown(rows, "bare baseline" if baseline else "baseline"))
    for note in notes:
        print(f"* {note}")
    target = os.environ.get("BENCH_RESULTS")
    if target:
        record = {"section": section, "setup": setup, "baseline": baseline, "notes": list(notes),
                  "rows": [asdict(row) for row in rows]}
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
