"""Resume: a finished campaign run again, next to its first run.

    .venv/bin/python bench/resume.py [--rows 250] [--formats upload]

The real ``campaign_batch`` Prefect flow (plan, render with the tiny model, QA, review queue,
export of what QA auto-approves, manifests, report) on ``bench/render_cpu.py``'s sheet:
``--rows`` rows x 2 variants x 2 aspects = 1,000 jobs by default, into a fresh local folder;
then the same command again on the same folder, which must render nothing and rewrite
byte-identical manifests. A warm-up flow run on a one-row sheet starts Prefect's temporary
server first, outside both timings. Goal: second run <= 5 % of the first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Row, at_most, report  # noqa: E402
from bench.render_cpu import write_sheet  # noqa: E402
from settings import variable  # noqa: E402
from store.keys import manifest_key  # noqa: E402

GOAL_RATIO = 0.05


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250, help="sheet rows; 4 jobs each (default 250 -> 1,000 jobs)")
    parser.add_argument("--formats", default="upload", help="export formats (default: upload, the placement's JPEG)")
    parser.add_argument("--batched", action="store_true", help="render 4 images per pipeline call "
                        "(BRANDBATCH_BATCH_INVARIANT=0): a faster first run, so a harder ratio")
    args = parser.parse_args(argv)
    if args.batched:
        os.environ[variable("batch_invariant")] = "0"

    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # 1,000 renders and their exports


def run(args: argparse.Namespace, work: Path) -> int:
    formats = args.formats.split(",")
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    from flows.campaign import campaign_batch

    campaign_batch(str(write_sheet(work / "warmup.csv", 1)), out=str(work / "warmup"), formats=formats)
    sheet, out = write_sheet(work / "resume.csv", args.rows), work / "out"

    def timed():
        start = time.perf_counter()
        summary = campaign_batch(str(sheet), out=str(out), formats=formats)
        return time.perf_counter() - start, summary

    first_s, first = timed()
    manifest = (out / manifest_key(first.campaign)).read_bytes()
    second_s, second = timed()
    if first.failed or first.rendered != first.jobs or second.rendered or second.cached != second.jobs:
        raise SystemExit(f"unexpected runs: first {first}, second {second}")
    if (out / manifest_key(first.campaign)).read_bytes() != manifest or second.exported != first.exported:
        raise SystemExit("the second run changed the manifest")
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(first.verdicts.items()))
    rows = [Row(f"second run of a finished {first.jobs:,}-job campaign (first run as baseline)", second_s, "s",
                first_s, goal=f"ratio <= {GOAL_RATIO:g}", met=at_most(second_s / first_s, GOAL_RATIO))]
    report("Resume", rows,
           setup=f"`bench/resume.py --rows {args.rows} --formats {args.formats}"
                 f"{' --batched' if args.batched else ''}`: "
                 f"the `campaign_batch` flow on {args.rows} rows x 2 variants x 2 aspects = {first.jobs:,} jobs "
                 f"(tiny-sd, 12 steps, CPU, {'batches of 4' if args.batched else 'batch-invariant'}), "
                 f"QA {verdicts}, {first.exported:,} export files, {first.queued} variants left for review; "
                 "then the same flow again on the same folder (0 rendered, "
                 f"{second.cached:,} cached, manifest byte-identical).",
           baseline="the first run of the same flow (ratio = second / first).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
