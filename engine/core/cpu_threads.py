"""How many threads CPU torch work uses, chosen again while it runs from what the other processes use.

GNU OpenMP (CPU torch's) keeps its threads spinning a moment after each parallel region, which is what makes
training's many small regions fast. But a team of two spinning threads beside a process that keeps one core busy
waits at every region for its descheduled thread. So CPU work runs with OpenMP's default waits and a
``ThreadGovernor`` that, at the step boundaries of the thread it governs (training steps, evaluation batches,
decoded tokens), gives up one thread for each core the other processes keep busy. On a 2-core Intel Xeon
(bench/cpu_threads.py, fp32 LoRA training, tokens/s): idle 257.9 governed, 171.1 with sleeping waits
(OMP_WAIT_POLICY=PASSIVE, shipped before), 252.6 spinning on a fixed count; beside a busy process 160.7, 141.2
and 34.9.

``TUNEBOARD_CPU_THREADS``: "auto" (the default) governs; a number fixes the thread count and turns the governor off.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.core.devices import cpu_tuned

THREADS_ENV = "TUNEBOARD_CPU_THREADS"
# A thread is given up when the others keep this share of a core busy and taken back below the lower share: on the
# 2-core Xeon, two spinning threads beat one beside a process using 20% of a core (232 against 160 tokens/s), about
# tied at 40% (176 against 166) and lost at 60% (128 against 159). A spinning team also slows the others down,
# so their measured share reads low while it spins: the threshold sits below the crossover.
GIVE_UP_SHARE = 0.3
TAKE_BACK_SHARE = 0.2
WINDOW_S = 1.0  # the shortest stretch the others' use is averaged over
FIRST_WINDOW_S = 0.2  # the first look's: a first step on a team that collapses can take seconds


def fixed_threads() -> int | None:
    """The thread count ``TUNEBOARD_CPU_THREADS`` fixes, or None when it is "auto" or unset."""
    value = os.environ.get(THREADS_ENV, "auto").strip().lower()
    if value in ("", "auto"):
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={value!r}: expected 'auto' or a whole number of threads") from None
    if count < 1:
        raise ValueError(f"{THREADS_ENV}={value!r}: expected 'auto' or at least 1 thread")
    return count


def threads_for(others_busy: float, cpus: int, most: int, current: int) -> int:
    """The thread count to use when the other processes keep ``others_busy`` of this process's ``cpus`` busy (in
    cores), with at most ``most`` threads and ``current`` now. Giving up needs more of a core than taking back, so
    a neighbour near the threshold does not flip the count at every look."""
    free = most * max(0.0, cpus - others_busy) / cpus  # in threads: ``most`` may be fewer than the CPUs (SMT)
    down = math.floor(free + GIVE_UP_SHARE)
    up = math.floor(free + TAKE_BACK_SHARE)
    wanted = down if down < current else up if up > current else current
    return max(1, min(most, wanted))


def _busy_seconds(cpus: set[int]) -> float | None:
    """CPU seconds spent busy (not idle or waiting on I/O) on ``cpus`` since boot, from /proc/stat."""
    hz = os.sysconf("SC_CLK_TCK")
    busy = 0
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                name, _, rest = line.partition(" ")
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                v = [int(x) for x in rest.split()]
                busy += v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq (not idle, iowait, steal)
    except (OSError, ValueError, IndexError):
        return None
    return busy / hz


def _own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


@dataclass
class _Sample:
    at: float
    busy: float
    own: float


class ThreadGovernor:
    """Sets torch's thread count for the thread that calls :meth:`adjust` (OpenMP's count is per thread) from the
    CPU the other processes used since the last look. Off (``adjust`` a no-op) where the count is fixed, where
    /proc/stat cannot be read, and in a process of a multi-process job (its siblings are not others)."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        import torch  # noqa: PLC0415 - engine.core stays importable without torch (tests/test_boundary.py)

        self._torch = torch
        self.on_change = on_change  # told each new count, in a sentence (a job's log)
        self.fixed = fixed_threads()
        self.most = self.fixed or torch.get_num_threads()
        self.cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count()))
        busy = _busy_seconds(self.cpus)
        siblings = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.enabled = self.fixed is None and busy is not None and not siblings and self.most > 1
        self.current = self.most
        self.changes = 0
        self.looked = False
        self._last = _Sample(time.monotonic(), busy or 0.0, _own_seconds())

    def others_busy(self) -> float | None:
        """Cores the other processes kept busy since the last look (None until a window has passed); starts a new
        window."""
        early = (WINDOW_S if self.looked else FIRST_WINDOW_S) - (time.monotonic() - self._last.at)
        if early > 0:
            if self.looked:
                return None
            time.sleep(early)  # once: the first work must not start blind
        self.looked = True
        now = time.monotonic()
        busy, own = _busy_seconds(self.cpus), _own_seconds()
        if busy is None:
            return None
        last, self._last = self._last, _Sample(now, busy, own)
        return max(0.0, (busy - last.busy) - (own - last.own)) / (now - last.at)

    def adjust(self) -> int:
        """Look again (at most once per window) and set the calling thread's thread count; the count in use."""
        if self.enabled:
            others = self.others_busy()
            if others is not None:
                wanted = threads_for(others, len(self.cpus), self.most, self.current)
                if wanted != self.current:
                    self.current, self.changes = wanted, self.changes + 1
                    if self.on_change is not None:
                        self.on_change(f"CPU threads: {wanted} of {self.most} (other processes kept "
                                       f"{others:.1f} of {len(self.cpus)} cores busy)")
        if self._torch.get_num_threads() != self.current:  # also a new thread, whose count starts at the default
            self._torch.set_num_threads(self.current)
        return self.current


def governor_for(device: str, on_change: Callable[[str], None] | None = None) -> ThreadGovernor | None:
    """A governor for torch work on ``device``: only the CPU's threads are governed (elsewhere they mostly wait for
    the device)."""
    return ThreadGovernor(on_change=on_change) if cpu_tuned(device.split(":")[0]) else None
