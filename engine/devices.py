"""Device and precision choice. The only module that knows about CUDA, Ascend NPU, MPS and CPU."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache


@lru_cache(maxsize=1)
def _torch_npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        import torch  # noqa: PLC0415
        import torch_npu  # noqa: F401, PLC0415 - registers the "npu" device with torch

        return torch.npu.is_available()
    except Exception:  # a broken CANN install must not break CPU use
        return False


def available_device_types() -> list[str]:
    import torch  # noqa: PLC0415

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _torch_npu_available():
        found.append("npu")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def pick_device(preference: str = "auto") -> str:
    """The device type to use: the preference if present, else the best one available."""
    found = available_device_types()
    if preference and preference != "auto":
        if preference not in found:
            raise RuntimeError(f"device {preference!r} is not available here (found: {', '.join(found)})")
        return preference
    return found[0]


def device_count(device: str) -> int:
    import torch  # noqa: PLC0415

    if device == "cuda":
        return torch.cuda.device_count()
    if device == "npu" and _torch_npu_available():
        return torch.npu.device_count()
    return 1


def visible_devices_env(device: str) -> str | None:
    """The environment variable that selects devices for this backend."""
    return {"cuda": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES"}.get(device)


def supports_bf16(device: str) -> bool:
    import torch  # noqa: PLC0415

    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    if device == "npu":
        return True
    if device == "cpu":
        return cpu_has_native_bf16()
    return False


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """bf16 autocast pays off on CPUs with AVX512-BF16 or AMX; without them it emulates
    bf16 and was measured about 25x slower than fp32 on an AVX2-only machine."""
    override = os.environ.get("TUNEBOARD_CPU_BF16")
    if override is not None:
        return override == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_compute_type(compute_type: str, device: str) -> str:
    """auto -> bf16 where supported, else fp16 on CUDA/NPU without bf16, else fp32."""
    if compute_type != "auto":
        if compute_type in ("bf16", "pure_bf16") and not supports_bf16(device):
            raise RuntimeError(f"{compute_type} is not supported on {device} (no native bf16); use fp32")
        if compute_type == "fp16" and device == "cpu":
            raise RuntimeError("fp16 training is not supported on the CPU; use bf16 or fp32")
        return compute_type
    if supports_bf16(device):
        return "bf16"
    if device in ("cuda", "npu"):
        return "fp16"
    return "fp32"


def batch_width_multiple(device: str, compute: str) -> int:
    """Training rows are padded to a multiple of this many tokens. On the CPU oneDNN runs bf16 matmuls with a
    kernel built and cached for each shape (about 0.6 MB each, measured): rows of every length grew a LoRA
    run's peak by 0.6 GB in its first epoch; rounded up to 32 tokens they cost about 5% padding instead."""
    return 32 if device == "cpu" and compute in ("bf16", "pure_bf16") else 1


def inference_dtype(device: str):
    """Weights dtype for chat: bf16 where supported on accelerators, fp32 on CPU (faster kernels)."""
    import torch  # noqa: PLC0415

    if device in ("cuda", "npu") and supports_bf16(device):
        return torch.bfloat16
    if device in ("cuda", "npu"):
        return torch.float16
    return torch.float32
