"""What holds for render bytes across CPU instruction sets: the same tiny jobs rendered in fresh
processes under forced ISAs, their stored PNG sha256s compared with the machine's default.

    python bench/determinism_isa.py            # prints a markdown table; takes ~1-2 min on 2 cores

Each setting runs in its own process (torch reads ATEN_CPU_CAPABILITY and oneDNN reads
ONEDNN_MAX_CPU_ISA once, at start). ``ATEN_CPU_CAPABILITY`` picks ATen's vectorised kernels
(default, avx2, avx512); ``ONEDNN_MAX_CPU_ISA`` caps oneDNN's convolutions/GEMMs (SSE41, AVX2,
AVX512_CORE, ...). oneDNN caps above what the CPU has fall back to the best the CPU has; ATen kernels
the CPU lacks crash the process (SIGILL), and the table says so. The table gives the capability
torch reported. The baseline is the machine's default setting; the
figure is how many of the renders kept identical PNG bytes, and the largest float difference
between a model loaded from disk and a freshly built one (the test suite's comparison).
The per-family sha256s are printed too, so a run on another machine (e.g. an Intel Xeon vs an
AMD EPYC) can be compared with the table recorded in docs/rendering.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = ("sd", "sdxl", "sd3", "flux")
SETTINGS = {
    "default": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def measure() -> dict:
    """In this process: sha256 of each family's stored PNG for two jobs, and the largest float
    difference between the loaded tiny model and a fresh build of it."""
    import hashlib

    import numpy as np
    import torch

    from render.devices import device_settings
    from render.registry import make_scheduler, pipeline_for
    from render.stage import call_pipeline, check_pixels, encode_png
    from render.tiny import build_tiny
    from tests.render.jobs import make_job

    settings = device_settings("cpu", batch_invariant=True)
    result = {"capability": torch.backends.cpu.get_cpu_capability(), "families": {}}
    for family in FAMILIES:
        scheduler = "flow_euler" if family in ("sd3", "flux") else "euler"
        jobs = [make_job(i, family, scheduler=scheduler) for i in (1, 2)]
        pipe = pipeline_for(jobs[0].model_id, jobs[0].model_revision, family, scheduler, settings)
        loaded = [call_pipeline(pipe, [job], settings)[0] for job in jobs]
        fresh_pipe = build_tiny(jobs[0].model_id)
        fresh_pipe.set_progress_bar_config(disable=True)
        fresh_pipe.scheduler = make_scheduler(scheduler, family, fresh_pipe.scheduler.config)
        fresh = call_pipeline(fresh_pipe, [jobs[0]], settings)[0]
        result["families"][family] = {
            "png_sha256": [hashlib.sha256(encode_png(check_pixels(j.key, image)[0])).hexdigest()
                           for j, image in zip(jobs, loaded)],
            "fresh_png_equal": encode_png(check_pixels("", fresh)[0]) == encode_png(check_pixels("", loaded[0])[0]),
            "max_float_diff_fresh": float(np.abs(fresh - loaded[0]).max()),
        }
    return result


def main() -> None:
    import platform

    results = {}
    for name, extra in SETTINGS.items():
        env = {**os.environ, **extra}
        out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0:  # e.g. SIGILL: ATEN_CPU_CAPABILITY=avx512 on a CPU without AVX-512
            results[name] = {"error": f"exit {out.returncode}: {(out.stderr.strip().splitlines() or ['?'])[-1]}"}
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    base = results["default"]["families"]
    print(f"Machine: {cpu}, {os.cpu_count()} cores; torch default capability "
          f"{results['default']['capability']}\n")
    print("| setting | torch capability | PNGs equal to default | loaded vs fresh: PNG equal / max float diff |")
    print("|---|---|---:|---|")
    total = 2 * len(FAMILIES)
    for name, result in results.items():
        if "error" in result:
            print(f"| {name} | does not run on this CPU ({result['error'][:60]}) | - | - |")
            continue
        fams = result["families"]
        same = sum(a == b for f in FAMILIES for a, b in zip(fams[f]["png_sha256"], base[f]["png_sha256"]))
        fresh = ", ".join(f"{f} {'yes' if fams[f]['fresh_png_equal'] else 'NO'}/{fams[f]['max_float_diff_fresh']:.1e}"
                          for f in FAMILIES)
        print(f"| {name} | {result['capability']} | {same}/{total} | {fresh} |")
    print("\nPNG sha256 (first 12 hex) at the default setting, per family, jobs 1 and 2:")
    for family in FAMILIES:
        print(f"- {family}: " + ", ".join(h[:12] for h in base[family]["png_sha256"]))


if __name__ == "__main__":
    if "--child" in sys.argv:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(measure()))
    else:
        main()
