"""tcmalloc for engine jobs, where the system has it (Debian/Ubuntu: ``libtcmalloc-minimal4``).

Training frees and reallocates activation-sized blocks every step. glibc malloc keeps much of that memory
fragmented in its heap; tcmalloc reuses it: faster, with a lower peak and the same loss (README, Benchmarks;
jemalloc was slower than glibc there). PyTorch's CPU performance guide recommends the same.

The allocator must be in place before the process allocates anything, so it is preloaded through the job's
environment (and the warm worker's, whose forks are the jobs). It is CPU tuning, measured on CPU training
only: engine.core.devices.cpu_tuning_env, the one place that decides it, gives it to CPU jobs alone (GPU and NPU
jobs keep glibc's malloc, which their libraries are tested with). ``TUNEBOARD_TCMALLOC=0`` turns it off.
"""

from __future__ import annotations

import os
import sysconfig
from functools import lru_cache
from pathlib import Path

from engine.core.switches import env_switch

ENV_SWITCH = "TUNEBOARD_TCMALLOC"
_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
# tcmalloc prints a report with a backtrace for every allocation above 1 GB (a large model's embedding
# matrix): noise in a run's log.
_QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


@lru_cache(maxsize=1)
def tcmalloc_path() -> str | None:
    """The system's tcmalloc library, found without running anything."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    folders = [f"/usr/lib/{multiarch}" if multiarch else "", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    for folder in filter(None, folders):
        for name in _NAMES:
            path = Path(folder) / name
            if path.is_file():
                return str(path)
    return None


def allocator_env() -> dict[str, str]:
    """Variables that make a job started from this process's environment use tcmalloc; {} when it is
    turned off, not installed, or already preloaded."""
    path = tcmalloc_path()
    preload = os.environ.get("LD_PRELOAD", "")
    if not env_switch(ENV_SWITCH) or path is None or "tcmalloc" in preload:
        return {}
    return {"LD_PRELOAD": f"{path}:{preload}" if preload else path, **_QUIET}
