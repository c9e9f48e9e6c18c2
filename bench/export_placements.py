"""Export throughput: brandbatch's export stage on all cores next to a bare single-core Pillow loop.

    .venv/bin/python bench/export_placements.py [--assets 4] [--repeat 3] [--workers N]

Renders are synthesised deterministically (768x768, 576x1024 and 1024x536, the sizes an SD
1.5-class model gives for 1:1, 9:16 and 1.91:1) and stored as PNG. Each asset goes to the
12 placements below in WebP, AVIF and the placement's upload format (JPEG/PNG).

* bare: one process, for each asset x placement: decode the nearest-aspect render, centre
  crop + Lanczos resize (``ImageOps.fit``), encode each format once at the top quality
  brandbatch uses (AVIF single-threaded), write the files. No saliency, overlays, byte-cap
  search, XMP, manifest rows or atomic writes. Run twice: without and with C2PA signing of
  each file (c2pa-python, the development credential, as brandbatch signs); the signed one is
  the baseline of the ratios, since every brandbatch export is signed. Run a third time signed
  and drawing brandbatch's headline + CTA overlays after the fit (``apply_overlays``): not a
  baseline, but what encoding the pixels brandbatch encodes costs (text edges are dear to AVIF),
  so brandbatch's CPU time / its CPU time is the overhead of brandbatch's own code.
* bare, 2 processes: the signed bare loop split over two processes forked before the clock
  starts and released together, each taking the next (asset, placement) from one shared
  longest-first list (so each does about half, and neither waits at the end for more than one
  placement); wall time of the pair. Not a baseline: the most this machine's cores give for
  this very work (2 vCPUs of a VM may share caches and memory bandwidth or be throttled), so
  brandbatch on 2 workers / this is the pool's own efficiency.
* brandbatch: ``exports.stage.export_assets`` into a fresh local store with headline + CTA
  overlays, with ``--workers`` processes (default: all cores) and with 1, pool start included;
  and on 1 worker and all cores without overlays.

Placements/s = (assets x placements) / seconds, best of ``--repeat`` rounds in which the runs
take turns. That wall-clock ratio needs a quiet machine: on a shared one the pool has no free
core. So the script also prints the CPU-time overhead ratio, which load from other processes
hardly moves: CPU seconds per placement of brandbatch on 1 worker (in this process, everything
a file costs: decode, saliency, fit, overlays, byte-cap search, signing, XMP, fingerprint,
atomic write, manifest row) / those of the signed bare loop; 2 / that ratio is the most 2 cores
can give against the bare loop with perfect scaling, and the bare loop's own 2-process ratio / it
the most they give on this machine. Then the byte-cap search
is measured on the first asset's files: the mean number of encodes per file that needed a search
under the real caps, and under caps set to 1/2 and 1/4 of each file's top-quality size; and the
bytes a C2PA manifest adds per format (the same files signed and unsigned).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exports.credentials import Credential, load_credential  # noqa: E402
from exports.encode import FORMATS, QUALITY, encode  # noqa: E402
from exports.fit import cover_fit, focal_point, nearest_render  # noqa: E402
from exports.metadata import xmp_packet  # noqa: E402
from exports.overlay import apply_overlays  # noqa: E402
from exports.placements import load_placements  # noqa: E402
from exports.provenance import Provenance, sign  # noqa: E402
from exports.stage import ExportItem, export_assets  # noqa: E402
from plan.jobs import RenderJob  # noqa: E402
from store.keys import render_key  # noqa: E402
from store.local import LocalStore  # noqa: E402

PLACEMENTS = (
    "meta.feed.square", "meta.stories", "meta.feed.landscape", "google.pmax.portrait",
    "google.display.upload.300x250", "google.display.upload.728x90", "google.display.upload.160x600",
    "google.display.upload.320x50", "iab.mobile_interstitial", "iab.billboard",
    "linkedin.single_image.landscape", "pinterest.standard",
)
RENDER_SIZES = {"1:1": (768, 768), "9:16": (576, 1024), "1.91:1": (1024, 536)}
RUN_FORMATS = ("webp", "avif", "upload")
HEADLINE, CTA = "Go further this spring", "Shop now"


def synth(seed: int, width: int, height: int) -> Image.Image:
    """A photo-like scene: soft gradients, a few blurred shapes, fine grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    img = rng.uniform(60, 180, 3) + y[..., None] * rng.uniform(-70, 70, 3) + x[..., None] * rng.uniform(-70, 70, 3)
    for _ in range(6):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.2)
        mask = np.exp(-(((x - cx * width / max(width, height)) ** 2 + (y - cy * height / max(width, height)) ** 2)
                        / (2 * r * r)))
        img += mask[..., None] * rng.uniform(-120, 120, 3)
    img += 8 * np.sin(x * rng.uniform(40, 90))[..., None] + rng.normal(0, 5, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_items(store: LocalStore, assets: int) -> list[ExportItem]:
    items = []
    for a in range(assets):
        renders = {}
        for aspect, (w, h) in RENDER_SIZES.items():
            job = RenderJob(campaign="bench", row_key=f"asset-{a:02d}", row=2 + a, variant=1, aspect=aspect, width=w,
                            height=h, prompt=f"product shot {a}", negative_prompt="", model_id="bench/none",
                            model_revision=None, model_family="sd", scheduler="euler", steps=1, guidance=1.0,
                            seed=a, style="bench", style_version=1)
            buffer = io.BytesIO()
            synth(a * 10 + len(renders), w, h).save(buffer, "PNG", compress_level=1)
            store.put(render_key(job.key), buffer.getvalue())
            renders[aspect] = job
        items.append(ExportItem(campaign="bench", asset_id=f"asset-{a:02d}", row=2 + a, variant=1,
                                placements=PLACEMENTS, renders=renders, qa_verdict="pass", approval_id=f"a{a}",
                                approved_by="bench", alt_text="", headline=HEADLINE, cta=CTA))
    return items


def bare_loop(items: list[ExportItem], store: LocalStore, placements: dict, out: Path,
              credential: Credential | None = None, overlays: bool = False) -> None:
    """``overlays``: draw the headline and CTA with brandbatch's ``apply_overlays`` after fitting."""
    for item in items:
        for pid in item.placements:
            p = placements[pid]
            job = min(item.renders.values(), key=lambda j: abs(np.log(j.width / j.height / (p.width / p.height))))
            with Image.open(io.BytesIO(store.get(render_key(job.key)))) as render:
                fitted = ImageOps.fit(render.convert("RGB"), (p.width, p.height), Image.Resampling.LANCZOS)
            if overlays:
                fitted = apply_overlays(fitted, p, headline=item.headline, cta=item.cta, in_place=True)[0]
            for fmt in ("webp", "avif", p.upload_formats[0]):
                buffer = io.BytesIO()
                if fmt == "webp":
                    fitted.save(buffer, "WEBP", quality=QUALITY["webp"][1], method=4)
                elif fmt == "avif":
                    fitted.save(buffer, "AVIF", quality=QUALITY["avif"][1], speed=8, max_threads=1)
                elif fmt == "jpeg":
                    fitted.save(buffer, "JPEG", quality=QUALITY["jpeg"][1], optimize=True, progressive=True)
                else:
                    fitted.save(buffer, "PNG", compress_level=6)
                data = buffer.getvalue()
                if credential is not None:
                    data = sign(data, fmt, _provenance(job, pid), credential, title=f"{item.asset_id}.{fmt}")
                (out / f"{item.asset_id}-{pid}.{fmt}").write_bytes(data)


def _bare_share(work: list[tuple[ExportItem, str]], taken, finished, go, store: LocalStore, placements: dict,
                out: Path, credential: Credential | None) -> None:
    """One process of ``bare_processes``: wait for ``go``, then take the next (item, placement)
    of ``work`` (index ``taken``) and run the signed bare loop on it, until none are left;
    ``finished`` counts the pairs done."""
    go.wait()
    while True:
        with taken.get_lock():
            index = taken.value
            taken.value += 1
        if index >= len(work):
            return
        item, pid = work[index]
        bare_loop([dataclasses.replace(item, placements=(pid,))], store, placements, out, credential)
        with finished.get_lock():
            finished.value += 1


def bare_processes(items: list[ExportItem], store: LocalStore, placements: dict, out: Path,
                   credential: Credential | None, processes: int) -> Callable[[], None]:
    """``processes`` forked processes sharing the signed bare loop's work, waiting to start: the
    returned function starts them and returns when all are done. Longest first by pixels x
    formats (PNG counted 2x), so the last placements taken are short."""
    def cost(pair: tuple[ExportItem, str]) -> int:
        p = placements[pair[1]]
        return p.width * p.height * (3 if p.upload_formats[0] == "png" else 2)

    work = sorted(((item, pid) for item in items for pid in item.placements), key=cost, reverse=True)
    context = multiprocessing.get_context("fork")
    taken, finished, go = context.Value("i", 0), context.Value("i", 0), context.Event()
    workers = [context.Process(target=_bare_share, args=(work, taken, finished, go, store, placements, out, credential))
               for _ in range(processes)]
    for worker in workers:
        worker.start()

    def run() -> None:
        go.set()
        for worker in workers:
            worker.join()
        # every pair done (a forked child's exit code also reflects exit hooks it inherited, e.g. a
        # test process's: not the work's)
        assert finished.value == len(work), f"{finished.value} of {len(work)} placements exported"
    return run


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _provenance(job: RenderJob, pid: str) -> Provenance:
    return Provenance(job_key=job.key, seed=job.seed, style="bench@1", model=job.model_id,
                      model_revision=job.model_revision, placement=pid, approval_id="bench", approved_by="bench")


def interleaved_best(repeat: int, runs: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Fastest wall time and least CPU time (of this process: for runs in it) of each
    ``(setup, run)`` in ``runs``, taking turns ``repeat`` times so that load from other processes
    on a shared machine hits every contender alike; setup untimed."""
    best = {name: float("inf") for name in runs}
    cpu = dict(best)
    for _ in range(repeat):
        for name, (setup, run) in runs.items():
            prepared = setup()
            start, start_cpu = time.perf_counter(), time.process_time()
            run(prepared)
            best[name] = min(best[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return best, cpu


def search_stats(item: ExportItem, store: LocalStore, placements: dict, credential: Credential
                 ) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Encodes per file that needed a search: real caps, and caps of 1/2 and 1/4 of top size;
    and per format the bytes that signing (C2PA) adds to each file."""
    stats: dict[str, list[int]] = {"real caps": [], "cap = 1/2 top size": [], "cap = 1/4 top size": []}
    overhead: dict[str, list[int]] = {fmt: [] for fmt in FORMATS}
    for pid in item.placements:
        p = placements[pid]
        job = nearest_render(item.renders, p)
        with Image.open(io.BytesIO(store.get(render_key(job.key)))) as render:
            fitted = cover_fit(render, p.width, p.height, focal_point(render))
        image, _ = apply_overlays(fitted, p, headline=HEADLINE, cta=CTA)
        xmp = xmp_packet(job.key, "bench@1")
        for fmt in FORMATS:
            data = encode(image, fmt, max_bytes=None, xmp=xmp).data
            overhead[fmt].append(len(sign(data, fmt, _provenance(job, pid), credential, title=f"x.{fmt}")) - len(data))
        for fmt in ("webp", "avif", "jpeg"):
            top = len(encode(image, fmt, max_bytes=None, xmp=xmp).data)
            if p.max_bytes is not None and top > p.max_bytes:
                stats["real caps"].append(encode(image, fmt, max_bytes=p.max_bytes, xmp=xmp).encodes)
            for label, share in (("cap = 1/2 top size", 2), ("cap = 1/4 top size", 4)):
                try:
                    stats[label].append(encode(image, fmt, max_bytes=top // share, xmp=xmp).encodes)
                except ValueError:  # even the lowest quality is over: counts as a (failed) search
                    stats[label].append(-1)
    return stats, overhead


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    placements = load_placements()
    assert all(fmt in FORMATS for p in PLACEMENTS for fmt in placements[p].upload_formats)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        renders = LocalStore(root / "renders")
        items = make_items(renders, args.assets)
        count = len(items) * len(PLACEMENTS)

        def fresh_dir() -> Path:
            return Path(tempfile.mkdtemp(dir=root))

        def fresh_store() -> LocalStore:
            store = LocalStore(fresh_dir())
            for key in renders.list("renders"):
                store.put(key, renders.get(key))
            return store

        def ours(workers: int, overlays: bool = True):
            def run(store: LocalStore) -> None:
                rows = export_assets(items, store, placements, formats=RUN_FORMATS, workers=workers, overlays=overlays)
                assert all(r["status"] == "exported" for r in rows), [r["error"] for r in rows if r["error"]]
            return run

        credential = load_credential()
        pair_cpu: list[float] = []

        def bare_pair(start: Callable[[], None]) -> None:
            before = children_cpu()
            start()
            pair_cpu.append(children_cpu() - before)

        runs = {
            "bare Pillow loop, 1 core": (fresh_dir, lambda out: bare_loop(items, renders, placements, out)),
            "bare Pillow loop + C2PA signing, 1 core": (
                fresh_dir, lambda out: bare_loop(items, renders, placements, out, credential)),
            "bare Pillow loop + overlays + C2PA signing, 1 core": (
                fresh_dir, lambda out: bare_loop(items, renders, placements, out, credential, overlays=True)),
            f"bare Pillow loop + C2PA signing, {args.workers} processes at once": (
                lambda: bare_processes(items, renders, placements, fresh_dir(), credential, args.workers), bare_pair),
            "brandbatch, 1 worker": (fresh_store, ours(1)),
            "brandbatch, 1 worker, no overlays": (fresh_store, ours(1, False)),
            f"brandbatch, {args.workers} workers": (fresh_store, ours(args.workers)),
            f"brandbatch, {args.workers} workers, no overlays": (fresh_store, ours(args.workers, False)),
        }
        seconds, cpu = interleaved_best(args.repeat, runs)
        stats, overhead = search_stats(items[0], renders, placements, credential)

    from bench.common import Row, at_least, at_most, report

    unsigned_s, bare_s = seconds["bare Pillow loop, 1 core"], seconds["bare Pillow loop + C2PA signing, 1 core"]
    all_cores = f"brandbatch, {args.workers} workers"
    goal = {"goal": "ratio >= 1.8 on 2 cores"}
    rows = [Row("bare Pillow loop without signing, 1 core (placements/s)", count / unsigned_s, "/s", count / bare_s,
                ratio=bare_s / unsigned_s)]
    rows += [Row(f"{label} (placements/s)", count / took, "/s", count / bare_s, ratio=bare_s / took,
                 **({**goal, "met": at_least(bare_s / took, 1.8)} if label == all_cores else {}))
             for label, took in seconds.items() if not label.startswith("bare Pillow loop")]
    pair = f"bare Pillow loop + C2PA signing, {args.workers} processes at once"
    pair_s = seconds[pair]
    rows += [Row(f"{pair}, sharing one longest-first list: this machine's own {args.workers}-core ceiling for this "
                 "work, not a baseline (placements/s)", count / pair_s, "/s", count / bare_s, ratio=bare_s / pair_s),
             Row(f"brandbatch, {args.workers} workers vs the bare loop on {args.workers} processes at once (the pool's "
                 "efficiency on this machine, placements/s)", count / seconds[all_cores], "/s", count / pair_s,
                 ratio=pair_s / seconds[all_cores]),
             Row(f"CPU time per placement, bare signed loop on {args.workers} processes at once (all of them; least of "
                 "the rounds)", min(pair_cpu) / count * 1000, "ms",
                 cpu["bare Pillow loop + C2PA signing, 1 core"] / count * 1000)]
    overhead_ratio = cpu["brandbatch, 1 worker"] / cpu["bare Pillow loop + C2PA signing, 1 core"]
    drawn = "bare Pillow loop + overlays + C2PA signing, 1 core"
    rows += [Row("CPU time per placement, brandbatch 1 worker in this process vs the signed bare loop "
                 "(overhead ratio)", cpu["brandbatch, 1 worker"] / count * 1000, "ms",
                 cpu["bare Pillow loop + C2PA signing, 1 core"] / count * 1000, ratio=overhead_ratio,
                 goal="ratio <= 1.11 (2 / 1.8)", met=at_most(overhead_ratio, 2 / 1.8)),
             Row("CPU time per placement, brandbatch 1 worker without overlays (the rest is drawing them and "
                 "encoding their sharper pixels)", cpu["brandbatch, 1 worker, no overlays"] / count * 1000, "ms",
                 cpu["bare Pillow loop + C2PA signing, 1 core"] / count * 1000),
             Row("CPU time per placement, the signed bare loop drawing brandbatch's overlays (`apply_overlays` after "
                 "the fit: the pixels brandbatch encodes)", cpu[drawn] / count * 1000, "ms",
                 cpu["bare Pillow loop + C2PA signing, 1 core"] / count * 1000),
             Row("CPU time per placement, brandbatch 1 worker vs that loop (brandbatch's own overhead on the same "
                 "pixels)", cpu["brandbatch, 1 worker"] / count * 1000, "ms", cpu[drawn] / count * 1000),
             Row("CPU time per placement, bare loop without signing", cpu["bare Pillow loop, 1 core"] / count * 1000,
                 "ms", cpu["bare Pillow loop + C2PA signing, 1 core"] / count * 1000),
             Row("most 2 cores can give with perfect scaling (2 / CPU overhead ratio)", 2 / overhead_ratio, "x"),
             Row(f"most this machine's cores can give brandbatch (the bare loop's own {args.workers}-process ratio / "
                 "CPU overhead ratio)", bare_s / pair_s / overhead_ratio, "x")]
    rows += [Row(f"C2PA manifest bytes added per {fmt} file (mean of {len(sizes)}, max {max(sizes)})",
                 sum(sizes) / len(sizes), "B") for fmt, sizes in overhead.items()]
    for label, encodes in stats.items():
        done = [e for e in encodes if e > 0]
        if done:
            rows.append(Row(f"byte-cap search, {label}: mean encodes of {len(encodes)} files searched (max "
                            f"{max(done)}, {encodes.count(-1)} unreachable)", sum(done) / len(done), "encodes",
                            goal="<= 3", met=at_most(sum(done) / len(done), 3)))
    report("Export", rows,
           setup=f"`bench/export_placements.py --assets {args.assets} --repeat {args.repeat} --workers "
                 f"{args.workers}`: "
                 f"{args.assets} synthetic assets x {len(PLACEMENTS)} placements = {count} placement exports, "
                 f"{len(RUN_FORMATS)} files each (WebP, AVIF, upload format), {os.cpu_count()} CPU cores visible; "
                 f"best of {args.repeat} rounds taken in turns.",
           baseline="one process: decode the nearest-aspect render, `ImageOps.fit`, encode each format once at "
                    "brandbatch's top quality, sign it (C2PA, development credential), write plain files (no saliency, "
                    "overlays, byte caps, XMP, manifest or atomic writes). Ratio = throughput / this baseline's "
                    "(first row: the same loop without signing).",
           notes=[f"Load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_start)} at the start and "
                  f"{'/'.join(f'{v:.1f}' for v in os.getloadavg())} at the end, {os.cpu_count()} cores: the "
                  "placements/s ratios need a quiet machine (with the cores busy the pool cannot scale); the CPU "
                  "overhead ratio holds under load (CPU time of one process; shared caches still move it a little)."])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
