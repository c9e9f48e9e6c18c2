"""Rendering overhead on CPU: brandbatch next to a bare loop of the same diffusers calls.

    .venv/bin/python bench/render_cpu.py [--rows 50] [--repeat 1] [--no-flow]

A sheet of ``--rows`` rows x 2 variants x 2 aspects (1:1, 9:16) of the ``acme@2`` style
(``brandbatch/tiny-sd``, 128 px buckets, 12 euler steps, CFG 6) gives 4 x rows jobs (200 by
default). In one process, with the same thread count (``$BRANDBATCH_TORCH_THREADS``, default 1)
and fp32, best of ``--repeat``:

* bare (per image): ``DiffusionPipeline.from_pretrained`` of the tiny model folder, then one
  pipeline call per job with its own seeded generator, output to uint8 arrays; nothing stored;
* ``render_missing`` (default, batch-invariant mode): the same calls, plus grouping, NaN/black
  checks, PNG encoding and the store writes (PNG + JSON sidecar);
* bare (batches of 4) vs ``render_missing(batch_invariant=False, batch_size=4)``;
* the whole ``campaign_batch`` Prefect flow (plan, render, QA, review queue, exports), after
  a warm-up flow run on a one-row sheet that starts Prefect's temporary server.

Ratio = brandbatch time / bare time (1.00 = no overhead). Each measurement loads its pipeline.
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
for key, value in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
                   "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}.items():
    os.environ.setdefault(key, value)

from plan.jobs import RenderJob  # noqa: E402
from settings import load_settings  # noqa: E402

FIELDS = ["asset_id", "style", "product", "scene", "mood", "headline", "cta", "variants", "placements", "alt_text"]
PRODUCTS = ["hiking backpack", "camping tent", "water bottle", "rain jacket", "hiking boots", "trail shoes",
            "sleeping bag", "head torch", "fleece jumper", "walking poles"]
SCENES = ["a mountain trail at sunrise", "a lakeside meadow", "a desert canyon", "a misty pine forest",
          "a rocky riverbank"]


def write_sheet(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for i in range(rows):
            writer.writerow({
                "asset_id": f"bench-{i:03d}", "style": "acme@2", "product": f"an orange {PRODUCTS[i % len(PRODUCTS)]}",
                "scene": SCENES[i % len(SCENES)], "mood": "", "headline": "Go further this spring", "cta": "Shop now",
                "variants": 2, "placements": "meta.feed.square;meta.stories", "alt_text": f"Product shot {i}",
            })
    return path


def plan_jobs(sheet: Path) -> list[RenderJob]:
    from exports.assemble import plan_settings
    from plan.planner import plan_campaign
    from plan.sheet import read_sheet

    settings, _ = plan_settings(None)
    plan = plan_campaign(read_sheet(sheet), settings)
    if plan.problems:
        raise SystemExit("\n".join(str(p) for p in plan.problems))
    return plan.jobs


def bare_loop(jobs: list[RenderJob], batch: int) -> float:
    """The same diffusers calls without brandbatch: load, then call per image (or per batch)."""
    import diffusers
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline

    from render.devices import device_settings
    from render.tiny import ensure_tiny

    device_settings("cpu")  # the same thread count as brandbatch
    start = time.perf_counter()
    pipe = DiffusionPipeline.from_pretrained(ensure_tiny(jobs[0].model_id, jobs[0].model_revision))
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    groups: dict[tuple, list[RenderJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    with torch.inference_mode():
        for group in groups.values():
            for i in range(0, len(group), batch):
                chunk = group[i:i + batch]
                images = pipe(prompt=[j.prompt for j in chunk], negative_prompt=[j.negative_prompt for j in chunk],
                              height=chunk[0].height, width=chunk[0].width, num_inference_steps=chunk[0].steps,
                              guidance_scale=chunk[0].guidance, output_type="np",
                              generator=[torch.Generator("cpu").manual_seed(j.seed) for j in chunk]).images
                _ = (images * 255).round().clip(0, 255).astype(np.uint8)
    return time.perf_counter() - start


def brandbatch_render(jobs: list[RenderJob], out: Path, batch_invariant: bool) -> float:
    from render.registry import load_pipeline
    from render.stage import render_missing
    from store.local import LocalStore

    load_pipeline.cache_clear()
    start = time.perf_counter()
    report = render_missing(jobs, LocalStore(out), batch_size=4, batch_invariant=batch_invariant)
    seconds = time.perf_counter() - start
    if report.failed or len(report.rendered) != len(jobs):
        raise SystemExit(f"render_missing failed: {report.failed[:3]}")
    return seconds


def whole_flow(sheet: Path, out: Path) -> float:
    from flows.campaign import campaign_batch
    from render.registry import load_pipeline

    load_pipeline.cache_clear()
    start = time.perf_counter()
    summary = campaign_batch(str(sheet), out=str(out))
    seconds = time.perf_counter() - start
    if summary.failed or summary.rendered != summary.jobs:
        raise SystemExit(f"flow failed: {summary.failed[:3]}")
    return seconds


def best(repeat: int, run) -> float:
    return min(run(i) for i in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50, help="sheet rows; 4 jobs each (default 50 -> 200 jobs)")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per measurement")
    parser.add_argument("--no-flow", action="store_true", help="skip the whole-flow measurement (no Prefect)")
    args = parser.parse_args()

    from render.tiny import ensure_tiny

    work = Path(tempfile.mkdtemp(prefix="bench-render-"))
    atexit.register(shutil.rmtree, work, True)  # models, renders and exports: nothing left behind
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    sheet = write_sheet(work / "bench.csv", args.rows)
    jobs = plan_jobs(sheet)
    ensure_tiny("brandbatch/tiny-sd", "builtin-1")  # built once, outside every timing
    threads = load_settings().torch_threads
    print(f"{len(jobs)} jobs ({args.rows} rows x 2 variants x 2 aspects), tiny-sd 128 px buckets, "
          f"{jobs[0].steps} steps, CFG {jobs[0].guidance}, CPU fp32, {threads} torch thread(s), best of {args.repeat}")

    rows = []
    bare1 = best(args.repeat, lambda _i: bare_loop(jobs, 1))
    ours1 = best(args.repeat, lambda i: brandbatch_render(jobs, work / f"inv{i}", True))
    rows.append(("render_missing (batch-invariant) vs bare per-image loop", ours1, bare1))
    bare4 = best(args.repeat, lambda _i: bare_loop(jobs, 4))
    ours4 = best(args.repeat, lambda i: brandbatch_render(jobs, work / f"b4{i}", False))
    rows.append(("render_missing (batch_invariant=False, 4) vs bare batches of 4", ours4, bare4))
    if not args.no_flow:
        whole_flow(write_sheet(work / "warmup.csv", 1), work / "warmup")
        flow = best(args.repeat, lambda i: whole_flow(sheet, work / f"flow{i}"))
        rows.append(("campaign_batch flow (plan+render+QA+review+export) vs bare per-image loop", flow, bare1))

    from bench.common import Row, at_most, report

    report("Rendering on CPU (tiny model)", [
        Row(name, ours, "s", bare, **({"goal": "ratio <= 1.10", "met": at_most(ours / bare, 1.10)}
                                      if name.startswith("campaign_batch") else {}))
        for name, ours, bare in rows],
        setup=f"`bench/render_cpu.py --rows {args.rows} --repeat {args.repeat}`: {len(jobs)} jobs ({args.rows} rows "
              f"x 2 variants x 2 aspects of acme@2: tiny-sd, 128 px buckets, {jobs[0].steps} euler steps, CFG "
              f"{jobs[0].guidance}), CPU fp32, {threads} torch thread(s), best of {args.repeat}.",
        baseline="`DiffusionPipeline.from_pretrained` of the tiny model and the same pipeline calls (per image, or in "
                 "batches of 4) with the same per-image generators, output to uint8 arrays, nothing stored.",
        notes=[f"{name}: {len(jobs) / ours:.1f} img/s" for name, ours, _ in rows])


if __name__ == "__main__":
    main()
