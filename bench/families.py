"""Creative families vs independent renders on CPU (tiny models): what one concept per asset costs.

    .venv/bin/python bench/families.py [--rows 4] [--repeat 1]

A sheet of ``--rows`` rows x 1 variant, each placed on meta.feed.square, meta.feed.portrait,
meta.stories and linkedin.single_image.landscape (aspects 1:1, 4:5, 9:16, 1.91:1), planned twice:
with ``acme@5`` (``composition: expand``: a 128 px 1:1 master by tiny-sd, then 3 expansions by
tiny-sd-inpaint on 128x160, 128x240 and 256x128 canvases, paste-back included) and with
``acme@2`` (independent: 4 renders by tiny-sd at the 128 px buckets). Both 12 euler steps,
CFG 6, ``render_missing`` batch-invariant, batch 4, the same thread count, best of ``--repeat``,
each with its pipelines loaded inside the timing. Ratio = family time / independent time (per
asset, for the same 4 aspect ratios). Expansion canvases keep the master's pixels 1:1, so they
hold more pixels than the independent buckets; the pixel ratio is printed with the figures.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PLACEMENTS = "meta.feed.square;meta.feed.portrait;meta.stories;linkedin.single_image.landscape"


def plan(work: Path, rows: int, style: str):
    from exports.assemble import plan_settings
    from plan.planner import plan_campaign
    from plan.sheet import read_sheet

    sheet = work / f"families-{style.replace('@', '-')}.csv"
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["asset_id", "style", "product", "scene", "variants", "placements"])
        for i in range(rows):
            writer.writerow([f"bench-{i:03d}", style, f"an orange hiking backpack number {i}", "a mountain trail",
                             1, PLACEMENTS])
    settings, _ = plan_settings(None)
    planned = plan_campaign(read_sheet(sheet), settings)
    if planned.problems:
        raise SystemExit("\n".join(str(p) for p in planned.problems))
    return planned.jobs


def timed(jobs, out: Path) -> float:
    from render.registry import load_pipeline
    from render.stage import render_missing
    from store.local import LocalStore

    load_pipeline.cache_clear()
    start = time.perf_counter()
    report = render_missing(jobs, LocalStore(out), batch_size=4)
    seconds = time.perf_counter() - start
    if report.failed or len(report.rendered) != len(jobs):
        raise SystemExit(f"render_missing failed: {report.failed[:3]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4, help="assets (default 4 -> 16 images per mode)")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per measurement")
    args = parser.parse_args()

    from render.devices import device_settings
    from render.tiny import ensure_tiny
    from settings import load_settings

    device_settings("cpu")
    work = Path(tempfile.mkdtemp(prefix="bench-families-"))
    atexit.register(shutil.rmtree, work, True)  # models, renders and exports: nothing left behind
    families = plan(work, args.rows, "acme@5")
    independent = plan(work, args.rows, "acme@2")
    for model in ("brandbatch/tiny-sd", "brandbatch/tiny-sd-inpaint"):
        ensure_tiny(model, "builtin-1")  # built once, outside every timing
    family = min(timed(families, work / f"family{i}") for i in range(args.repeat))
    alone = min(timed(independent, work / f"independent{i}") for i in range(args.repeat))
    pixels = sum(j.width * j.height for j in families) / sum(j.width * j.height for j in independent)
    expansions = sum(j.is_expansion for j in families)
    threads = load_settings().torch_threads

    from bench.common import Row, report

    report("Creative families vs independent renders (CPU, tiny models)", [
        Row(f"{args.rows} families (master + {expansions // args.rows} expansions each) vs "
            f"{len(independent)} independent renders, seconds", family, "s", alone),
        Row("seconds per asset, family", family / args.rows, "s", alone / args.rows),
    ],
        setup=f"`bench/families.py --rows {args.rows} --repeat {args.repeat}`: {args.rows} assets x 4 aspect ratios "
              f"(1:1, 4:5, 9:16, 1.91:1); families: acme@5 (tiny-sd master 128x128 + tiny-sd-inpaint expansions), "
              f"independent: acme@2 (tiny-sd, 128 px buckets); 12 euler steps, CFG 6, CPU fp32, {threads} torch "
              f"thread(s), batch-invariant, best of {args.repeat}, pipeline loading included.",
        baseline="",
        notes=[f"the families' images hold {pixels:.2f}x the pixels of the independent ones (expansion canvases "
               f"keep the master 1:1), so per pixel the family costs {family / alone / pixels:.2f}x",
               "ratio = family time / independent time; the baseline column is the independent renders"])


if __name__ == "__main__":
    main()
