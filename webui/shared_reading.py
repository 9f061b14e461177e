"""A reading of the disk or the machine shared by every browser session for a short while: thirty classroom pages
refreshing a panel make one reading, not thirty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedReading(Generic[T]):
    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._last: tuple[float, T] | None = None
        self.lock = threading.Lock()  # also for callers' own caches derived from the reading

    def get(self, max_age_s: float) -> T:
        """The last reading if it is at most ``max_age_s`` old, else a new one (read under the lock)."""
        with self.lock:
            if self._last is None or time.monotonic() - self._last[0] > max_age_s:
                self._last = (time.monotonic(), self._read())
            return self._last[1]
