"""A small bounded cache of values that are costly to make and shared between threads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SharedMemo(Generic[V]):
    """The ``kept`` most recently used values by key. A value is made once: a second caller asking for the same
    key while it is being made waits for it instead of making it again."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            value = self._values.get(key)
            if value is None:
                value = self._values[key] = make()
                while len(self._values) > self.kept:
                    self._values.popitem(last=False)
            else:
                self._values.move_to_end(key)
            return value
