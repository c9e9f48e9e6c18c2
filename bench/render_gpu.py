"""SDXL-architecture throughput on a GPU: brandbatch's render_missing next to bare pipeline calls.

    .venv/bin/python bench/render_gpu.py [--batches 1,2,4,8] [--images 16] [--compile both|on|off]
    .venv/bin/python bench/render_gpu.py --tiny        # CPU smoke run with the tiny SDXL model

Full mode builds the full-size SDXL architecture (UNet 2.6 B parameters, CLIP-L + OpenCLIP
bigG text encoders, the SDXL VAE) from configs with random weights directly on the GPU (timing
does not depend on weight values), in bf16 (fp16 without bf16), and renders at 1024x1024 with
30 euler steps and CFG 5. For each batch size and torch.compile setting it times ``--images``
images of bare ``pipe(...)`` calls (after one warm-up call) and prints images/s. Then it saves
the model to a temporary folder and times ``render_missing`` on the same number of jobs at the
best bare batch size (batch_invariant=False) against the bare loop: ratio = bare time /
brandbatch time (1.00 = no overhead; the goal is >= 0.97).

Then two stages of creative families and exports on the same device:

* **expand**: ``render_missing`` outpaints ``--expansions`` of the masters just rendered to 9:16
  (1024x1856) and 1.91:1 (1984x1024) through ``StableDiffusionXLInpaintPipeline`` over the same
  model (the style's own model reused; paste-back included): seconds per expansion against
  seconds per master.
* **upscale**: the full-size Real-ESRGAN x4plus architecture (RRDBNet, 64 filters, 23 blocks;
  random weights saved as a ``.pth``, loaded with spandrel through ``render.upscale``) upscales
  masters 4x (1024 -> 4096): seconds per image on the device (exports run it on the CPU).

``--tiny`` uses ``brandbatch/tiny-sdxl`` on the CPU at 128 px and 4 steps (and the tiny upscaler):
it proves the script works without a GPU; its numbers say nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plan.jobs import RenderJob, derive_expand_seed, derive_seed  # noqa: E402


def full_sdxl(dtype, device: str = "cuda"):
    """The SDXL base 1.0 architecture (its published configs) with random weights, on the GPU."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from plan.tokens import clip_tokenizer

    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2, sample_size=1024,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            scaling_factor=0.13025,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, hidden_act="quick_gelu",
                                                    projection_dim=768))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
            hidden_act="gelu", projection_dim=1280))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
                                     scheduler=scheduler)
    pipe.to(dtype=dtype)
    for module in (unet, vae, text_encoder, text_encoder_2):
        module.eval()
    return pipe


def make_jobs(n: int, model_id: str, size: int, steps: int) -> list[RenderJob]:
    return [RenderJob(campaign="bench-gpu", row_key=f"r{i}", row=i, variant=1, aspect="1:1", width=size, height=size,
                      prompt=f"a studio product photo of an orange backpack, number {i}", negative_prompt="blurry",
                      model_id=model_id, model_revision=None, model_family="sdxl", scheduler="euler", steps=steps,
                      guidance=5.0, seed=derive_seed("bench-gpu", f"r{i}", 1, "bench@1"), style="bench",
                      style_version=1) for i in range(n)]


def expansion_jobs(masters: list[RenderJob], aspects: tuple[str, ...] = ("9:16", "1.91:1")) -> list[RenderJob]:
    """One expansion per master and aspect, as the planner makes them for ``composition: expand``."""
    from plan.resolution import expand_size

    out = []
    for master in masters:
        for aspect in aspects:
            width, height = expand_size((master.width, master.height), aspect, master.model_family,
                                        master.width if master.width < 256 else None)
            out.append(RenderJob.from_dict({**master.to_dict(), "aspect": aspect, "width": width, "height": height,
                                            "seed": derive_expand_seed(master.key, aspect),
                                            "master_key": master.key}))
    return out


def full_esrgan(path: Path) -> None:
    """The Real-ESRGAN x4plus architecture (RRDBNet 64 filters, 23 blocks) with random weights, saved."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4).state_dict(), path)


def bare(pipe, jobs: list[RenderJob], batch: int, device: str) -> float:
    """Seconds for bare pipeline calls over ``jobs`` in batches (after one warm-up call)."""
    import torch

    def call(chunk):
        pipe(prompt=[j.prompt for j in chunk], negative_prompt=[j.negative_prompt for j in chunk],
             height=chunk[0].height, width=chunk[0].width, num_inference_steps=chunk[0].steps,
             guidance_scale=chunk[0].guidance, output_type="np",
             generator=[torch.Generator(device).manual_seed(j.seed) for j in chunk])

    with torch.inference_mode():
        call(jobs[:batch])  # warm-up (and compilation)
        sync(device)
        start = time.perf_counter()
        for i in range(0, len(jobs), batch):
            call(jobs[i:i + batch])
        sync(device)
    return time.perf_counter() - start


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny SDXL on the CPU (proves the script runs)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,2,4,8; --tiny 1,2)")
    parser.add_argument("--images", type=int, default=None, help="images per measurement (default 16; --tiny 4)")
    parser.add_argument("--compile", choices=("both", "on", "off"), default=None,
                        help="torch.compile the UNet (default both; --tiny off)")
    parser.add_argument("--expansions", type=int, default=None,
                        help="masters expanded (x2 aspects) and upscaled in the family stages (default 4; --tiny 1)")
    args = parser.parse_args()

    import torch

    from render.devices import device_settings
    from render.registry import load_pipeline
    from render.stage import render_missing
    from render.tiny import build_tiny, ensure_tiny
    from store.local import LocalStore

    batches = [int(b) for b in (args.batches or ("1,2" if args.tiny else "1,2,4,8")).split(",")]
    images = args.images or (4 if args.tiny else 16)
    compile_modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.compile or ("off" if args.tiny
                                                                                              else "both")]
    if args.tiny:
        settings = device_settings("cpu", batch_invariant=False)
        size, steps = 128, 4
    else:
        if not torch.cuda.is_available():
            raise SystemExit("full mode needs a CUDA GPU; use --tiny to check the script on a CPU")
        settings = device_settings("cuda", batch_invariant=False)
        size, steps = 1024, 30
    work = Path(tempfile.mkdtemp(prefix="bench-render-gpu-"))
    atexit.register(shutil.rmtree, work, True)  # models, renders and exports: nothing left behind
    model_id = "brandbatch/tiny-sdxl" if args.tiny else str(work / "sdxl-random")
    jobs = make_jobs(max(images, max(batches)), model_id, size, steps)
    print(f"device {settings.device} ({torch.cuda.get_device_name() if settings.kind == 'cuda' else 'CPU'}), "
          f"{settings.dtype}, {'tiny' if args.tiny else 'full-size'} SDXL architecture, random weights, {size}x{size}, "
          f"{steps} euler steps, CFG 5, {len(jobs)} images per measurement")

    results: dict[tuple[int, bool], float] = {}
    print("\n| batch | torch.compile | seconds | images/s |\n|---|---|---|---|")
    for compiled in compile_modes:
        pipe = build_tiny(model_id) if args.tiny else full_sdxl(settings.torch_dtype())
        pipe.set_progress_bar_config(disable=True)
        if compiled:
            pipe.unet.compile()
        for batch in batches:
            seconds = bare(pipe, jobs, batch, settings.device)
            results[(batch, compiled)] = seconds
            print(f"| {batch} | {'on' if compiled else 'off'} | {seconds:.2f} | {len(jobs) / seconds:.3f} |", flush=True)
        if not args.tiny and not compiled:
            pipe.save_pretrained(work / "sdxl-random")  # the same random model, for render_missing
        del pipe
        if settings.kind == "cuda":
            torch.cuda.empty_cache()

    (batch, compiled), bare_seconds = min(results.items(), key=lambda item: item[1])
    if args.tiny:
        ensure_tiny(model_id, None)
    settings = device_settings(settings.device, batch_invariant=False, compile=compiled)
    load_pipeline(model_id, None, settings)  # load + warm up outside the timing, like the bare loop
    render_missing(make_jobs(batch, model_id, size, steps), LocalStore(work / "warmup"),
                   batch_size=batch, settings=settings)
    sync(settings.device)
    start = time.perf_counter()
    report = render_missing(jobs, LocalStore(work / "out"), batch_size=batch, settings=settings)
    sync(settings.device)
    ours = time.perf_counter() - start
    failed = f", {len(report.failed)} failed ({report.failed[0].reason})" if report.failed else ""
    print(f"\nrender_missing at batch {batch}, compile {'on' if compiled else 'off'}: {ours:.2f} s "
          f"({len(jobs) / ours:.3f} images/s{failed}); bare {bare_seconds:.2f} s; "
          f"throughput ratio brandbatch/bare = {bare_seconds / ours:.3f}")

    # -- creative families: expand the masters just rendered, then upscale masters -------------
    masters = jobs[:args.expansions or (1 if args.tiny else 4)]
    expansions = expansion_jobs(masters)
    sync(settings.device)
    start = time.perf_counter()
    expanded = render_missing(expansions, LocalStore(work / "out"), batch_size=1, settings=settings)
    sync(settings.device)
    expand_seconds = time.perf_counter() - start
    if expanded.failed:
        raise SystemExit(f"expand stage failed: {expanded.failed[0]}")
    print(f"expand: {len(expansions)} expansions ({', '.join(sorted({f'{j.width}x{j.height}' for j in expansions}))}) "
          f"in {expand_seconds:.2f} s, {expand_seconds / len(expansions):.2f} s each; masters "
          f"{ours / len(jobs):.2f} s each")

    from PIL import Image

    from render.upscale import UpscalerSpec, upscale, upscaler_spec
    from plan.styles import file_sha256

    if args.tiny:
        spec = upscaler_spec("brandbatch/tiny-esrgan", None, None)
    else:
        weights = work / "RealESRGAN_x4plus-random.pth"
        full_esrgan(weights)
        spec = UpscalerSpec(weights.name, str(weights), file_sha256(weights))
    sources = [Image.open(work / "out" / "renders" / f"{m.key}.png").convert("RGB") for m in masters]
    upscale(sources[0], spec, settings.device)  # load + warm-up outside the timing
    sync(settings.device)
    start = time.perf_counter()
    for image in sources:
        upscaled, scale = upscale(image, spec, settings.device)
    sync(settings.device)
    upscale_seconds = time.perf_counter() - start
    print(f"upscale: {len(sources)} masters x{scale} to {upscaled.width}x{upscaled.height} in {upscale_seconds:.2f} s, "
          f"{upscale_seconds / len(sources):.2f} s each")

    from bench.common import Row, at_least
    from bench.common import report as report_section

    best = f"batch {batch}, compile {'on' if compiled else 'off'}"
    rows = [Row(f"bare pipeline, batch {b}, compile {'on' if c else 'off'} (images/s)", len(jobs) / s, "/s")
            for (b, c), s in results.items()]
    goal = {} if args.tiny else {"goal": "ratio >= 0.97", "met": at_least(bare_seconds / ours, 0.97)
                                                                and not report.failed}
    rows.append(Row(f"render_missing at the best setting ({best}), images/s", len(jobs) / ours, "/s",
                    len(jobs) / bare_seconds, ratio=bare_seconds / ours, **goal))
    if not args.tiny:  # the GPU goals; a CPU smoke run says nothing about them
        rows.append(Row("render_missing images/s (goal on one H100)", len(jobs) / ours, "/s", goal=">= 1.2",
                        met=at_least(len(jobs) / ours, 1.2)))
    rows.append(Row(f"expand stage: seconds per expansion ({len(expansions)} to 9:16 and 1.91:1), vs per master",
                    expand_seconds / len(expansions), "s", ours / len(jobs)))
    rows.append(Row(f"upscale stage: seconds per {size} px master upscaled x{scale} "
                    f"({'tiny upscaler' if args.tiny else 'Real-ESRGAN x4plus architecture'})",
                    upscale_seconds / len(sources), "s"))
    title = "CPU, tiny SDXL (smoke run: says nothing about GPU speed)" if args.tiny else "GPU"
    report_section(f"Rendering on {title}", rows,
           setup=f"`bench/render_gpu.py{' --tiny' if args.tiny else ''}`: {settings.device} "
                 f"({torch.cuda.get_device_name() if settings.kind == 'cuda' else 'CPU'}), {settings.dtype}, "
                 f"{'tiny' if args.tiny else 'full-size'} SDXL architecture with random weights, {size}x{size}, "
                 f"{steps} euler steps, CFG 5, {len(jobs)} images per measurement.",
           baseline="bare `pipe(...)` calls in batches after one warm-up call (ratio = bare time / render_missing "
                    "time).",
           notes=["GPU goals not measured: no CUDA GPU here (render_missing >= 0.97x bare throughput and >= 1.2 "
                  "images/s on one H100 need `bench/render_gpu.py` on a GPU)."] if args.tiny else [])


if __name__ == "__main__":
    main()
