"""Device and precision choice. The only module that knows about CUDA, Ascend NPU, MPS and CPU."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
from functools import lru_cache

from engine.core.allocator import allocator_env
from engine.core.hardware import device_use


@lru_cache(maxsize=1)
def _torch_npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import
        import torch_npu  # noqa: F401, PLC0415 - registers the "npu" device with torch

        return torch.npu.is_available()
    except Exception as exc:  # noqa: BLE001 - a broken CANN install must not break CPU use; "auto" then picks the CPU
        print(npu_load_failure(exc), file=sys.stderr, flush=True)
        return False


def available_device_types() -> list[str]:
    import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

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
    import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

    if device == "cuda":
        return torch.cuda.device_count()
    if device == "npu" and _torch_npu_available():
        return torch.npu.device_count()
    return 1


def visible_devices_env(device: str) -> str | None:
    """The environment variable that selects devices for this backend."""
    return {"cuda": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES"}.get(device)


# The Devices picker numbers GPUs as nvidia-smi lists them, by PCI bus; CUDA's own default puts the fastest card
# first, so on a machine with different cards the picker's "1" could be another card in the job.
DEVICE_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
# torch imports torch-npu by itself when it is installed (its "device backend autoload"); with CANN missing or
# broken that makes ``import torch`` fail, even for work on the CPU. This module imports torch-npu explicitly
# where it is wanted (_torch_npu_available), so switching the autoload off loses nothing.
BACKEND_AUTOLOAD = "TORCH_DEVICE_BACKEND_AUTOLOAD"


def job_device(choice: str) -> str:
    """The device type a job with device setting ``choice`` will run on, decided before it starts (its
    environment depends on it): pick_device's answer, or the choice itself where that is not here (the job then
    refuses it in words)."""
    try:
        return pick_device(choice)
    except RuntimeError:
        return choice


def device_env(device: str, indices: list[int], processes: int = 1) -> dict[str, str]:
    """The variables that choose which devices a job on ``device`` sees: the ticked ``indices`` (numbered as
    nvidia-smi and npu-smi list them), or with none ticked the first ``processes`` of those this process sees.
    A single process that sees several GPUs is wrapped in DataParallel by the Trainer: its batch is split over
    them and gathered on the first, and lean activations' patched forwards stay on the original module."""
    name = visible_devices_env(device)
    if name is None:
        return {}
    if indices:
        chosen = [str(i) for i in indices]
    else:  # a restriction this process was started with is kept
        inherited = [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]
        chosen = (inherited or [str(i) for i in range(max(1, processes))])[:max(1, processes)]
    return {name: ",".join(chosen), **(DEVICE_ORDER if device == "cuda" else {})}


def cpu_tuned(device: str) -> bool:
    """Whether the CPU-only tuning applies to work on ``device``: the one rule that tcmalloc, the CPU thread
    governor (engine.core.cpu_threads), torch-npu's autoload and lean activations' grouped-query attention all
    follow. On a GPU or NPU the CPU threads mostly wait for the device, and CUDA's SDPA kernels take grouped-query
    attention only without a mask (math kernel otherwise)."""
    return device == "cpu"


def cpu_tuning_env(device: str, preload: bool = True) -> dict[str, str]:
    """The environment CPU-only tuning adds for a process on ``device`` ({} elsewhere); a value exported in this
    process wins. ``preload=False`` leaves out the allocator preload (for the web process's own environment:
    a preload only acts on a new process, and every child would inherit it)."""
    if not cpu_tuned(device):
        return {}
    # OpenMP keeps its default waits (spin a moment, then sleep): the thread governor, not sleeping waits, keeps a
    # job from collapsing beside a busy process (engine.core.cpu_threads).
    env = {}
    if importlib.util.find_spec("torch_npu") is not None:
        env[BACKEND_AUTOLOAD] = os.environ.get(BACKEND_AUTOLOAD, "0")
    if preload:
        env.update(allocator_env())
    return env


def job_env(device: str, indices: list[int], processes: int = 1) -> dict[str, str]:
    """Everything a job on ``device`` gets in its environment because of its device."""
    return {**device_env(device, indices, processes), **cpu_tuning_env(device)}


@lru_cache(maxsize=1)
def machine_device() -> str:
    """The device type "auto" is expected to pick here, told without importing torch: from the GPUs and NPUs
    the vendors' tools list. For what must be set before torch loads, in processes that run no job themselves:
    the web process's own settings and the warm worker's. Only a guess (a CPU-only torch on a GPU machine),
    which costs nothing when wrong: a job resolves its device with pick_device, and one whose environment then
    differs from the warm worker's is started cold."""
    kinds = {d.kind for d in device_use()}
    return "cuda" if "GPU" in kinds else "npu" if "NPU" in kinds else "cpu"


def web_process_env() -> dict[str, str]:
    """Set in the web process before anything imports torch (chat runs there; jobs inherit what their own
    environment does not set). GPUs numbered as the picker numbers them; torch-npu not autoloaded where it is
    installed (whether CANN works is only known by trying, which _torch_npu_available does and survives); and
    the CPU tuning, less the allocator preload, where chat will run on the CPU."""
    env = dict(DEVICE_ORDER)
    if importlib.util.find_spec("torch_npu") is not None:
        env[BACKEND_AUTOLOAD] = "0"
    env.update(cpu_tuning_env(machine_device(), preload=False))
    return env


def npu_load_failure(exc: BaseException) -> str:
    """``exc``, raised while torch-npu loads, as one sentence naming the cause and what to do."""
    lines = str(exc.__cause__ or exc).strip().splitlines()
    detail = lines[0] if lines else type(exc).__name__
    return (f"torch-npu (the Ascend NPU backend) is installed but does not load, so the NPU cannot be used: the "
            f"CANN toolkit is missing, broken or not set up in this shell (source CANN's set_env.sh first); work "
            f"on the CPU runs with {BACKEND_AUTOLOAD}=0 ({detail})")


def torch_import_failure(exc: BaseException) -> str | None:
    """npu_load_failure's sentence when ``exc`` is ``import torch`` failing to autoload torch-npu, else None
    (an error raised later inside torch-npu, which names it too, is not a failure to load)."""
    autoload = isinstance(exc, RuntimeError) and "backend extension: torch_npu" in str(exc)
    return npu_load_failure(exc) if autoload else None


def empty_cache(device: str | None) -> None:
    """Give the memory cached by torch's allocator on ``device`` (the type a model was on) back to the device,
    so that another process (a training job) can have it; on the CPU, glibc's freed heap (nothing for MPS)."""
    if device == "cpu":
        _trim_heap()
    elif device == "cuda":
        import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    elif device == "npu" and _torch_npu_available():
        import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

        torch.npu.empty_cache()


def _trim_heap() -> None:
    """glibc keeps freed heap memory for the process to reuse. Weights mapped from a safetensors file leave with
    their mapping, but weights converted at load (bf16 chat from an fp32 file) live on the heap: hand what is
    free back to the system (a no-op beside another allocator, or without glibc)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def supports_bf16(device: str) -> bool:
    import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

    if device == "cuda":
        # By default torch counts bf16 that runs emulated (a T4 or V100, compute capability below 8): auto would
        # pick a precision those cards run slowly or not at all, where fp16 runs natively.
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device == "npu":
        # Ascend 910A and 310P have no bf16 (910B and later do); torch-npu knows which chip this is.
        return _torch_npu_available() and torch.npu.is_bf16_supported()
    if device == "cpu":
        return cpu_has_native_bf16()
    return False


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """bf16 autocast pays off on CPUs with AVX512-BF16 or AMX; without them bf16 is emulated, far slower than
    fp32 (README, Devices)."""
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
    kernel built and cached for each shape, so rows of every length keep growing a run's peak; rounded up to 16
    tokens they cost a little padding instead (README, Devices). (32 padded the benchmark's 140-token rows by 9%,
    16 by 4.5%; 16 added 41 MB to a 50-step demo run's peak, every length 0.3 GB.)"""
    return 16 if device == "cpu" and compute in ("bf16", "pure_bf16") else 1


def inference_dtype(device: str):
    """Weights dtype for chat: bf16 where supported on accelerators, fp32 on CPU (faster kernels)."""
    import torch  # noqa: PLC0415 - boundary: engine.core is torch-free at import

    if device in ("cuda", "npu") and supports_bf16(device):
        return torch.bfloat16
    if device in ("cuda", "npu"):
        return torch.float16
    return torch.float32
