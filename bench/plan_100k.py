"""Planning a big sheet: read + validate + jobs (with their keys) for a generated 100k-row sheet.

    .venv/bin/python bench/plan_100k.py [--rows 100000] [--repeat 1]

The sheet is like ``bench/render_cpu.py``'s (style ``acme@2``, 2 variants, placements
``meta.feed.square;meta.stories`` -> 2 aspects, so 4 jobs a row: 400,000 jobs for 100k rows),
with a product text of its own on every row, so every prompt differs.
Each measurement runs in a fresh Python process, imports included, and reports its wall time
and peak resident memory (``ru_maxrss`` of that process):

* brandbatch: ``plan.sheet.read_sheet`` + ``plan.planner.plan_campaign`` (every check a run
  makes: styles, placements, banned terms, prompt template, CLIP token count) and every job key;
  sheets of ``PARALLEL_ROWS`` rows or more are planned in chunks by this process and one spawned
  worker per other core (their CPU time and memory are reported too);
* bare baseline: ``csv.DictReader`` over the same file, the same Jinja2 template rendered per row,
  and per job a sha256 of its JSON: the least work that gives a prompt and a key per job.

Goals: at most 10 s and 1 GiB peak for 100k rows. Ratio = brandbatch / bare.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Row, at_most, report  # noqa: E402
from bench.render_cpu import FIELDS, PRODUCTS, SCENES  # noqa: E402
from plan.planner import PARALLEL_ROWS  # noqa: E402

GOAL_SECONDS = 10.0
GOAL_BYTES = 1024**3

MOODS = ["", "calm", "bold", "playful", "premium"]


def write_sheet(path: Path, rows: int) -> Path:
    """``bench/render_cpu.py``'s sheet, with a product text of its own on every row (a catalogue:
    every prompt differs; scenes, moods, headline and CTA repeat)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for i in range(rows):
            writer.writerow({
                "asset_id": f"sku-{i:06d}", "style": "acme@2",
                "product": f"an orange {PRODUCTS[i % len(PRODUCTS)]}, model {i:06d}",
                "scene": SCENES[i % len(SCENES)], "mood": MOODS[i % len(MOODS)], "headline": "Go further this spring",
                "cta": "Shop now", "variants": 2, "placements": "meta.feed.square;meta.stories",
                "alt_text": f"Product shot {i}",
            })
    return path


OURS = """
import json, resource, sys, time
start = time.perf_counter()
from exports.assemble import plan_settings
from plan.planner import plan_campaign
from plan.sheet import read_sheet
settings, _ = plan_settings(None)
plan = plan_campaign(read_sheet(sys.argv[1]), settings)
keys = {job.key for job in plan.jobs}
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the planning worker processes, if any
print(json.dumps({"seconds": seconds, "rss": usage.ru_maxrss * 1024, "worker_rss": workers.ru_maxrss * 1024,
                  "cpu": usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime,
                  "rows": len(plan.rows), "jobs": len(plan.jobs), "keys": len(keys), "problems": len(plan.problems)}))
"""

BARE = """
import json, resource, sys, time
start = time.perf_counter()
import csv, hashlib
import jinja2
template = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[2])).get_template("product_ad.j2")
keys, rows = set(), 0
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    for row in csv.DictReader(handle):
        rows += 1
        prompt = " ".join(template.render(style_tokens=[], **{k: v for k, v in row.items() if v}).split())
        for variant in (1, 2):
            for aspect in ("1:1", "9:16"):
                job = {"campaign": "bench", "row_key": row["asset_id"], "variant": variant, "aspect": aspect,
                       "prompt": prompt}
                keys.add(hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest())
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "rss": usage.ru_maxrss * 1024, "cpu": usage.ru_utime + usage.ru_stime,
                  "rows": rows, "jobs": len(keys)}))
"""


def measure(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs of each")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        sheet = write_sheet(Path(tmp) / "plan-100k.csv", args.rows)
        size = sheet.stat().st_size
        ours = min((measure(OURS, str(sheet)) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        bare = min((measure(BARE, str(sheet), str(REPO / "templates/prompts")) for _ in range(args.repeat)),
                   key=lambda r: r["seconds"])
    workers = (os.cpu_count() or 1) - 1 if args.rows >= PARALLEL_ROWS else 0  # plan.planner._plan_in_workers
    total_rss = ours["rss"] + workers * ours["worker_rss"]
    if ours["problems"] or ours["keys"] != ours["jobs"] or ours["jobs"] != bare["jobs"]:
        raise SystemExit(f"unexpected plan: {ours} (bare: {bare})")
    rows = [
        Row(f"plan {args.rows:,} rows -> {ours['jobs']:,} jobs: wall time", ours["seconds"], "s", bare["seconds"],
            goal=f"<= {GOAL_SECONDS:g} s", met=at_most(ours["seconds"], GOAL_SECONDS)),
        Row("plan: CPU time of the process and its planning workers (user + system)", ours["cpu"], "s",
            bare["cpu"]),
        Row("plan: peak memory (RSS of the process)", ours["rss"] / 2**20, "MiB", bare["rss"] / 2**20,
            goal="<= 1,024 MiB", met=at_most(ours["rss"], GOAL_BYTES)),
        Row("plan: peak memory of the process plus its workers (upper bound: largest worker's peak x "
            f"{workers} workers)", total_rss / 2**20, "MiB", bare["rss"] / 2**20),
    ]
    report("Planning a 100k-row sheet", rows,
           setup=f"`bench/plan_100k.py --rows {args.rows} --repeat {args.repeat}`: a generated CSV of {args.rows:,} "
                 f"rows ({size / 2**20:.1f} MiB; every row's product and prompt differ; style acme@2, 2 variants x 2 "
                 f"aspects = {ours['jobs']:,} jobs); "
                 "read_sheet + plan_campaign + every job key, in a fresh process, imports included; best of "
                 f"{args.repeat}.",
           baseline="csv.DictReader + the same Jinja2 template per row + a sha256 of each job's JSON, in a fresh "
                    "process (no validation, banned terms or token counts).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
