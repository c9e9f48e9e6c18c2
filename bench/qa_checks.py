"""QA throughput on synthetic renders: brandbatch's QA next to a bare loop of the same library calls.

    .venv/bin/python bench/qa_checks.py [--renders 200] [--size 512] [--repeat 3]

Renders are synthesised deterministically (gradient backgrounds with a soft-edged disc and
grain, and every 50th one black) and stored as PNG in a temporary local store. Two measurements, best of
``--repeat``:

* technical + palette + dHash: ``qa.run_qa`` with a style that names no CLIP model, against
  a bare loop doing the same decoding, numpy statistics, skimage CIEDE2000, scipy k-means and
  dHash resize, without results, verdicts or JSON writes;
* CLIP scoring (tiny open_clip config, random weights, CPU): ``qa.clip.clip_checks`` with an
  empty embedding cache, against a bare loop of open_clip preprocessing, ``encode_image`` in
  batches of 32, ``encode_text`` for the prompts and the unsafe labels, and the zero-shot
  softmax. Both include building the model.

Ratio = brandbatch time / bare time (1.00 = no overhead).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plan.jobs import RenderJob  # noqa: E402
from plan.styles import Style  # noqa: E402
from store.keys import CHECKS_PREFIX, EMBEDDINGS_PREFIX, render_key  # noqa: E402
from store.local import LocalStore  # noqa: E402

PALETTE = ("#E4572E", "#29335C", "#F3A712", "#F5F1E8")


def synth(i: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    if i % 50 == 7:
        return np.zeros((size, size, 3), np.uint8)  # a black render now and then
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, 3).astype(np.float32)
    tilt = rng.uniform(-60, 60, (2, 3)).astype(np.float32)
    img = base + y[..., None] * tilt[0] + x[..., None] * tilt[1]
    cy, cx, radius = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
    disc = np.clip((radius - np.hypot(x - cx, y - cy)) * size / 3.0, 0, 1)[..., None]  # a soft-edged product
    img = img * (1 - disc) + rng.uniform(0, 255, 3).astype(np.float32) * disc
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_jobs(count: int, size: int) -> list[RenderJob]:
    return [RenderJob(campaign="bench", row_key=f"asset-{i // 2:03d}", row=2 + i // 2, variant=1 + i % 2, aspect="1:1",
                      width=size, height=size, prompt=f"a product photo number {i}, golden hour light",
                      negative_prompt="", model_id="brandbatch/tiny-sd", model_revision="builtin-1", model_family="sd",
                      scheduler="euler", steps=2, guidance=6.0, seed=i, style="bench", style_version=1)
            for i in range(count)]


def style(**qa: object) -> Style:
    return Style.model_validate({
        "name": "bench", "version": 1, "owner": "bench", "status": "approved", "model": {"id": "brandbatch/tiny-sd"},
        "prompt_template": "product_ad.j2", "aspect_ratios": ["1:1"], "palette": list(PALETTE),
        "placements": ["meta.feed.square"], "qa": {"review_sample_rate": 0.0, **qa},
    })


def bare_technical(jobs: list[RenderJob], store: LocalStore) -> None:
    from scipy.cluster.vq import kmeans2
    from skimage.color import deltaE_ciede2000, rgb2lab

    palette_lab = rgb2lab(np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE]) / 255.0)
    for job in jobs:
        img = Image.open(io.BytesIO(store.get(render_key(job.key)))).convert("RGB")
        rgb = np.asarray(img)
        luma = np.asarray(img.convert("L"), dtype=np.float32)
        luma.mean(), luma.std(), np.all(rgb == 0, axis=2).mean(), (luma <= 2).mean(), (luma >= 253).mean()
        (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]).var()
        small = np.asarray(img.resize((64, 64), Image.Resampling.BOX), dtype=np.float64).reshape(-1, 3) / 255.0
        lab = rgb2lab(small)
        (deltaE_ciede2000(lab[:, None, :], palette_lab[None]).min(axis=1) <= 20).mean()
        if len(np.unique(lab.round(2), axis=0)) >= 5:
            kmeans2(lab, 5, minit="++", seed=0)
        grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
        (grey[:, 1:] > grey[:, :-1]).ravel()


def bare_clip(jobs: list[RenderJob], store: LocalStore) -> None:
    import open_clip
    import torch

    from qa.clip import LOCAL_CONFIGS

    open_clip.add_model_config(LOCAL_CONFIGS)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("brandbatch-tiny-clip")
    model.eval()
    tokenizer = open_clip.get_tokenizer("brandbatch-tiny-clip")
    with torch.inference_mode():
        labels = model.encode_text(tokenizer(list(style().qa.unsafe_labels)), normalize=True)
        for start in range(0, len(jobs), 32):
            batch = jobs[start:start + 32]
            images = torch.stack([preprocess(Image.open(io.BytesIO(store.get(render_key(j.key)))).convert("RGB"))
                                  for j in batch])
            image = model.encode_image(images, normalize=True)
            text = model.encode_text(tokenizer([j.prompt for j in batch]), normalize=True)
            (image * text).sum(dim=1).numpy(), (image @ torch.cat([text, labels]).T).softmax(dim=1).numpy()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args, _ = parser.parse_known_args(argv)

    import logging

    import torch

    from qa import run_qa
    from qa.clip import clip_checks

    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that the tiny model has random weights
    jobs = make_jobs(args.renders, args.size)
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        store = LocalStore(tmp)
        for i, job in enumerate(jobs):
            buffer = io.BytesIO()
            Image.fromarray(synth(i, args.size)).save(buffer, format="PNG", compress_level=1)
            store.put(render_key(job.key), buffer.getvalue())
        plain = {"bench@1": style()}
        clip_style = {"bench@1": style(clip_model="brandbatch-tiny-clip", min_clip_score=0.0, clip_uncertainty=0.0,
                                        unsafe_threshold=1.0, unsafe_uncertainty=0.0)}
        run_qa(jobs[:4], store, clip_style)  # warm up imports (torch, open_clip, skimage)

        def technical_uncached() -> None:  # the findings kept for resume would make repeats free
            for key in store.list(CHECKS_PREFIX):
                (Path(tmp) / key).unlink()
            run_qa(jobs, store, plain)

        def clip_uncached() -> None:
            for key in store.list(EMBEDDINGS_PREFIX):
                (Path(tmp) / key).unlink()
            clip_checks(jobs, store, clip_style)

        rows = [
            ("technical + palette + dHash", best(technical_uncached, args.repeat),
             best(lambda: bare_technical(jobs, store), args.repeat)),
            ("CLIP score + safety (tiny, CPU)", best(clip_uncached, args.repeat),
             best(lambda: bare_clip(jobs, store), args.repeat)),
        ]
        verdicts = [r.verdict for r in run_qa(jobs, store, plain)]
    n = args.renders
    from bench.common import Row, report

    report("QA", [Row(f"{name} ({n / ours:.1f} img/s, bare {n / bare:.1f})", ours, "s", bare)
                  for name, ours, bare in rows],
           setup=f"`bench/qa_checks.py --renders {n} --size {args.size} --repeat {args.repeat}`: {n} synthetic "
                 f"renders of {args.size}x{args.size} px in a local store (kept QA findings deleted before each "
                 f"run), best of {args.repeat}, torch threads {torch.get_num_threads()}; verdicts "
                 f"{verdicts.count('pass')} pass, {verdicts.count('review')} review, {verdicts.count('fail')} fail.",
           baseline="a bare loop of the same library calls (PIL decode, numpy statistics, skimage CIEDE2000, scipy "
                    "k-means, dHash; open_clip preprocessing and encoders) without verdicts, JSON writes or caches.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
