"""Where and how renders run: device, dtype, CPU threads, exact batch invariance.

CPU renders use fp32 and a fixed thread count (``$BRANDBATCH_TORCH_THREADS``, default 1), so
pixels are bit-identical across runs and processes. GPUs use bf16 (fp16 where bf16 is missing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_CPU_THREADS = 1
DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceSettings:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "float32", "bfloat16", "float16"
    threads: int | None  # CPU only
    batch_invariant: bool  # one pipeline call per image: pixels never depend on batch composition

    @property
    def kind(self) -> str:
        return self.device.partition(":")[0]

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"${name} must be 1/0 (true/false) but is {value!r}")


def cpu_threads() -> int:
    value = os.environ.get("BRANDBATCH_TORCH_THREADS", "").strip()
    if not value:
        return DEFAULT_CPU_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"$BRANDBATCH_TORCH_THREADS must be a whole number >= 1 but is {value!r}")
    return int(value)


def pick_device(device: str | None = None) -> str:
    """``device`` (or ``$BRANDBATCH_DEVICE``) if given, else cuda, then mps, then cpu."""
    import torch

    wanted = device or os.environ.get("BRANDBATCH_DEVICE") or None
    if wanted is None:
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if wanted.partition(":")[0] not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (cuda:N allowed) but is {wanted!r}")
    return wanted


def device_settings(device: str | None = None, *, batch_invariant: bool | None = None) -> DeviceSettings:
    """Settings for this process; applies the CPU thread count (process-wide in torch)."""
    import torch

    chosen = pick_device(device)
    kind = chosen.partition(":")[0]
    invariant = _env_flag("BRANDBATCH_BATCH_INVARIANT", True) if batch_invariant is None else batch_invariant
    if kind == "cpu":
        threads = cpu_threads()
        torch.set_num_threads(threads)
        return DeviceSettings(chosen, "float32", threads, invariant)
    if kind == "cuda":
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return DeviceSettings(chosen, dtype, None, invariant)
    return DeviceSettings(chosen, "float16", None, invariant)
