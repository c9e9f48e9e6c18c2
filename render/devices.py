"""Where and how renders run: device, dtype, CPU threads, batch invariance, memory/speed options.

CPU renders use fp32 and a fixed thread count (``$BRANDBATCH_TORCH_THREADS``, default 1), so
pixels are bit-identical across runs and processes. GPUs use bf16 (fp16 where bf16 is missing).
Every option is a keyword of ``device_settings`` or an environment variable (docs/rendering.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import load_settings

DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceSettings:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "float32", "bfloat16", "float16"
    threads: int | None  # CPU only
    batch_invariant: bool  # one pipeline call per image: pixels never depend on batch composition
    compile: bool = False  # torch.compile the denoiser (UNet/transformer)
    vae_tiling: bool = False  # decode large images tile by tile (less memory, slightly different pixels)
    vae_slicing: bool = False  # decode a batch one image at a time (less memory)
    cpu_offload: bool = False  # keep idle components in CPU memory (small GPUs; GPU only)

    @property
    def kind(self) -> str:
        return self.device.partition(":")[0]

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def cpu_threads() -> int:
    """``$BRANDBATCH_TORCH_THREADS`` (default 1)."""
    return load_settings().torch_threads


def pick_device(device: str | None = None) -> str:
    """``device`` (or ``$BRANDBATCH_DEVICE``) if given, else cuda, then mps, then cpu."""
    import torch

    wanted = device or load_settings().device
    if wanted is None:
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = wanted.partition(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (cuda:N allowed) but is {wanted!r}")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[kind]:
        raise ValueError(f"device {wanted!r} was asked for (device= or $BRANDBATCH_DEVICE) but this machine's "
                         f"torch has no usable {kind} device; use cpu or leave it unset to pick the best one")
    return wanted


def device_settings(device: str | None = None, *, batch_invariant: bool | None = None,
                    compile: bool | None = None, vae_tiling: bool | None = None, vae_slicing: bool | None = None,
                    cpu_offload: bool | None = None) -> DeviceSettings:
    """Settings for this process (keyword, else ``$BRANDBATCH_<NAME>``, else the default); applies
    the CPU thread count, which is process-wide in torch."""
    import torch

    chosen = pick_device(device)
    kind = chosen.partition(":")[0]
    given = dict(batch_invariant=batch_invariant, compile=compile, vae_tiling=vae_tiling, vae_slicing=vae_slicing,
                 cpu_offload=cpu_offload)
    settings = load_settings()
    options = {name: getattr(settings, name) if value is None else value for name, value in given.items()}
    if options["cpu_offload"] and kind == "cpu":
        raise ValueError("cpu_offload (BRANDBATCH_CPU_OFFLOAD) moves idle model parts off a GPU; "
                         "it needs a cuda or mps device but the device is cpu")
    if kind == "cpu":
        threads = cpu_threads()
        torch.set_num_threads(threads)
        return DeviceSettings(chosen, "float32", threads, **options)
    if kind == "cuda":
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return DeviceSettings(chosen, dtype, None, **options)
    return DeviceSettings(chosen, "float16", None, **options)
