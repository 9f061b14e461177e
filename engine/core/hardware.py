"""What the machine is doing: CPU and memory use, and each GPU's or NPU's memory and utilisation.

Devices are read with the vendors' tools (nvidia-smi, npu-smi), not torch: they see every process on a device,
the training jobs included, and the web process that asks need not import torch.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

import psutil

TOOL_TIMEOUT_S = 5.0
NVIDIA_QUERY = ["--query-gpu=index,name,memory.used,memory.total,utilization.gpu", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class DeviceUse:
    kind: str  # "GPU" or "NPU"
    index: int
    name: str
    memory_used_mb: float
    memory_total_mb: float
    utilization: float | None  # percent; None where the tool does not say


@dataclass(frozen=True)
class HardwareUse:
    cpu_percent: float  # all cores, since the previous reading
    cpu_count: int
    ram_used: int  # bytes, the whole machine
    ram_total: int
    app_rss: int  # bytes resident in this process and its descendants (the warm worker and the jobs)
    devices: tuple[DeviceUse, ...]


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_nvidia_smi(text: str) -> list[DeviceUse]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,
    nounits``."""
    found = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        used, total = _number(parts[2]), _number(parts[3])
        if used is None or total is None:
            continue
        found.append(DeviceUse("GPU", int(parts[0]), parts[1], used, total, _number(parts[4])))
    return found


# npu-smi info: two table lines per device, e.g.
# | 0     910B3               | OK            | 93.2        41                0    / 0             |
# | 0                         | 0000:C1:00.0  | 0           0    / 0          3161 / 65536         |
# (AICore %, then Memory-Usage used / total, then HBM-Usage used / total, in MB; HBM is absent on some models.)
_NPU_ROWS = re.compile(
    r"^\|\s*(\d+)\s+(\S[^|]*?)\s*\|[^|\n]*\|[^\n]*\n"
    r"\|\s*\d+\s*\|\s*[0-9A-Fa-f:.]+\s*\|\s*(\d+(?:\.\d+)?)\s+(\d+)\s*/\s*(\d+)(?:\s+(\d+)\s*/\s*(\d+))?",
    re.M)


def parse_npu_smi(text: str) -> list[DeviceUse]:
    """Devices of ``npu-smi info`` (the summary table): HBM use where the chip has it, else its memory use."""
    found = []
    for index, name, aicore, mem_used, mem_total, hbm_used, hbm_total in _NPU_ROWS.findall(text):
        used, total = (hbm_used, hbm_total) if hbm_total and int(hbm_total) > 0 else (mem_used, mem_total)
        found.append(DeviceUse("NPU", int(index), name.strip(), float(used), float(total), float(aicore)))
    return found


@cache
def _tool(name: str) -> str | None:
    return shutil.which(name)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def device_use() -> list[DeviceUse]:
    """Every GPU and NPU the vendors' tools list; none on a machine without them."""
    found = []
    if _tool("nvidia-smi"):
        found += parse_nvidia_smi(_run([_tool("nvidia-smi"), *NVIDIA_QUERY]))
    if _tool("npu-smi"):
        found += parse_npu_smi(_run([_tool("npu-smi"), "info"]))
    return found


def _tree_rss() -> int:
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ended or not ours between listing and reading
            continue
    return total


def hardware_use() -> HardwareUse:
    """A reading now. The CPU share is over the time since the previous call (the first call's is since import)."""
    memory = psutil.virtual_memory()
    return HardwareUse(cpu_percent=psutil.cpu_percent(interval=None), cpu_count=psutil.cpu_count() or 1,
                       ram_used=memory.total - memory.available, ram_total=memory.total, app_rss=_tree_rss(),
                       devices=tuple(device_use()))


psutil.cpu_percent(interval=None)  # starts the CPU clock: the first reading then covers the time since import
