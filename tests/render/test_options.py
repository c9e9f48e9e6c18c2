"""Device settings and the opt-in options: env/keyword parsing, VAE tiling/slicing, torch.compile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.render.jobs import make_job

from render.devices import device_settings
from render.registry import load_pipeline
from render.stage import render_missing
from store.keys import render_key, sidecar_key
from store.local import LocalStore


def test_cpu_defaults_are_fp32_fixed_threads_batch_invariant(monkeypatch):
    monkeypatch.delenv("BRANDBATCH_TORCH_THREADS", raising=False)
    import torch

    settings = device_settings("cpu")
    assert (settings.dtype, settings.threads, settings.batch_invariant) == ("float32", 1, True)
    assert not (settings.compile or settings.vae_tiling or settings.vae_slicing or settings.cpu_offload)
    assert torch.get_num_threads() == 1


def test_options_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BRANDBATCH_VAE_TILING", "1")
    monkeypatch.setenv("BRANDBATCH_BATCH_INVARIANT", "false")
    settings = device_settings("cpu")
    assert settings.vae_tiling and not settings.batch_invariant
    assert not device_settings("cpu", vae_tiling=False).vae_tiling  # a keyword wins over the environment
    monkeypatch.setenv("BRANDBATCH_VAE_SLICING", "maybe")
    with pytest.raises(ValueError, match=r"\$BRANDBATCH_VAE_SLICING must be 1/0 \(true/false\) but is 'maybe'"):
        device_settings("cpu")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("BRANDBATCH_DEVICE", "cuda:1")
    with pytest.raises(ValueError, match="device 'cuda:1' was asked for .* no usable cuda device"):
        device_settings()


def test_cpu_offload_needs_a_gpu():
    with pytest.raises(ValueError, match="needs a cuda or mps device but the device is cpu"):
        device_settings("cpu", cpu_offload=True)


def test_settings_and_device_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="either settings or device"):
        render_missing([make_job(1)], LocalStore(tmp_path), device="cpu", settings=device_settings("cpu"))


def test_vae_tiling_and_slicing_render_and_are_recorded(tmp_path):
    settings = device_settings("cpu", vae_tiling=True, vae_slicing=True)
    pipe = load_pipeline("brandbatch/tiny-sd", "builtin-1", settings)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert not load_pipeline("brandbatch/tiny-sd", "builtin-1", device_settings("cpu")).vae.use_tiling
    big = make_job(1, width=192, height=160, steps=2)  # larger than the 128 px VAE tile: really tiled
    small = make_job(2, steps=2)
    tiled, plain = LocalStore(tmp_path / "tiled"), LocalStore(tmp_path / "plain")
    assert render_missing([big, small], tiled, settings=settings).failed == []
    assert render_missing([big, small], plain).failed == []
    sidecar = json.loads(tiled.get(sidecar_key(big.key)))
    assert sidecar["vae_tiling"] is True and sidecar["vae_slicing"] is True
    # one tile: the same pixels; several tiles: blended seams, so not the same pixels
    assert tiled.get(render_key(small.key)) == plain.get(render_key(small.key))
    assert tiled.get(render_key(big.key)) != plain.get(render_key(big.key))


def test_torch_compile_renders_the_same_image_closely(tmp_path):
    """Inductor on CPU (slow to compile: the one expensive test here)."""
    import io

    from PIL import Image

    job = make_job(1, width=32, height=32, steps=1)
    compiled, plain = LocalStore(tmp_path / "compiled"), LocalStore(tmp_path / "plain")
    assert render_missing([job], compiled, settings=device_settings("cpu", compile=True)).failed == []
    assert render_missing([job], plain).failed == []
    a, b = (np.asarray(Image.open(io.BytesIO(s.get(render_key(job.key)))), dtype=int) for s in (compiled, plain))
    assert np.abs(a - b).max() <= 2  # fused kernels round differently; the image is the same
