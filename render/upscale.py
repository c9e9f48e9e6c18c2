"""Super-resolution for exports: an ESRGAN-family model loaded with spandrel, pinned by sha256.

A style's ``upscaler`` names ``brandbatch/tiny-esrgan`` or a weights file (``.pth``,
``.safetensors``: Real-ESRGAN x4plus, realesr-general-x4v3, 4x-UltraSharp, ... any architecture
spandrel detects as single-image super-resolution) with its ``sha256``. The tiny one is
Real-ESRGAN's compact architecture (SRVGGNetCompact: a few convolutions plus a nearest-neighbour
upsampled copy of the input) with random weights under a fixed seed, saved as a ``.pth`` once
(atomically) under ``$BRANDBATCH_MODEL_CACHE/tiny-esrgan/builtin-1`` and then loaded from that
file like any other weights, so tests exercise the real loading and inference path offline.
Upscaling runs in fp32 on the render device (CPU: the fixed thread count of ``render.devices``);
its result is stored content-addressed and reused, so each render is upscaled once.
torch and spandrel are imported inside functions.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from plan.styles import TINY_UPSCALER, file_sha256
from render.tiny import BUILD_SEED, TINY_REVISION, model_cache_root


@dataclass(frozen=True)
class UpscalerSpec:
    """Which weights upscale: ``id`` as the style names it, the file, its pinned sha256."""

    id: str
    path: str
    sha256: str

    @property
    def tag(self) -> str:
        """Names the weights in store keys and manifests: ``<id>@<sha256[:16]>``."""
        return f"{self.id}@{self.sha256[:16]}"


class UpscalerError(Exception):
    """Weights that are missing, differ from their pinned sha256, or are not a super-resolution model."""


def ensure_tiny_upscaler() -> Path:
    """The tiny upscaler's ``.pth``, built and saved first if it is not there yet (torch is
    imported only to build it: a command that only names the weights stays quick)."""
    path = model_cache_root() / "tiny-esrgan" / TINY_REVISION / "model.pth"
    if path.is_file():
        return path
    import torch
    from spandrel.architectures.Compact import Compact

    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4, act_type="prelu")
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model.", suffix=".pth")
    os.close(handle)
    try:
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def upscaler_spec(upscaler_id: str, path: str | None, sha256: str | None) -> UpscalerSpec:
    """The spec of a style's upscaler (``path``: its weights file, resolved against the style's
    folder; None for the tiny one)."""
    if upscaler_id == TINY_UPSCALER:
        tiny = ensure_tiny_upscaler()
        return UpscalerSpec(upscaler_id, str(tiny), file_sha256(tiny))
    if path is None or sha256 is None:
        raise UpscalerError(f"upscaler {upscaler_id!r} needs its weights file and sha256")
    return UpscalerSpec(upscaler_id, path, sha256)


@lru_cache(maxsize=2)
def load_upscaler(spec: UpscalerSpec, device: str = "cpu"):
    """The spandrel model descriptor (fp32, eval, on ``device``), after checking the file's sha256."""
    import spandrel

    weights = Path(spec.path)
    if not weights.is_file():
        raise UpscalerError(f"upscaler weights {spec.path!r} ({spec.id}) do not exist")
    actual = file_sha256(weights)
    if actual != spec.sha256:
        raise UpscalerError(f"upscaler weights {spec.path!r} have sha256 {actual}, not the pinned {spec.sha256}")
    try:
        model = spandrel.ModelLoader(device=device).load_from_file(weights)
    except Exception as exc:  # noqa: BLE001 - spandrel raises many kinds for unknown files
        raise UpscalerError(f"upscaler weights {spec.path!r} cannot be loaded by spandrel: {exc}") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose != "SR" or model.scale < 2:
        raise UpscalerError(f"upscaler weights {spec.path!r} are a {model.architecture.name} {model.purpose} model, "
                            f"not single-image super-resolution (scale >= 2)")
    return model.eval()


def upscale(image: Image.Image, spec: UpscalerSpec, device: str | None = None) -> tuple[Image.Image, int]:
    """(the image upscaled by the model, the model's scale) on ``device`` (default: the render
    device, ``$BRANDBATCH_DEVICE`` else cuda, mps, cpu). A full-size Real-ESRGAN x4plus took
    8.3 s per 64x64 input pixels on one thread of a loaded 2-core CPU (a 1024 px render: many
    minutes); exports store the result and reuse it, so each render is upscaled once."""
    import numpy as np
    import torch

    from render.devices import cpu_threads, pick_device

    device = device or pick_device()
    model = load_upscaler(spec, device)
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    with torch.inference_mode():
        out = model(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(device))
    array = (out[0].permute(1, 2, 0).clamp(0, 1).float().cpu().numpy() * 255).round().astype("uint8")
    return Image.fromarray(array, mode="RGB"), int(model.scale)
