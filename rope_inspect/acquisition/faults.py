"""A frame source wrapper that injects camera faults on command (tests, soak runs).

`FaultySource(inner)` behaves like `inner` until told otherwise, from any thread:

- `inject("timeout", n)`: the next n reads time out (return None);
- `inject("skip", n)`: the next n frames are unusable (FrameSkipped "truncated");
- `inject("error", n)`: the next n reads raise an unexpected RuntimeError;
- `inject("black", n)` / `inject("saturated", n)`: the next n frames are all 0 / 255
  (a lighting failure), delivered normally;
- `lose(failed_opens=k)`: the camera is gone: reads raise SourceLost until the source
  is reopened, and the next k `open()` calls fail as an unplugged camera would.
"""

from __future__ import annotations

import threading

import numpy as np

from rope_inspect.acquisition.base import (
    FrameInfo,
    FrameSkipped,
    FrameSource,
    SourceWrapper,
)
from rope_inspect.errors import SourceError, SourceLost

FAULTS = ("timeout", "skip", "error", "black", "saturated")


class FaultySource(SourceWrapper):
    """See the module docstring."""

    def __init__(self, inner: FrameSource) -> None:
        super().__init__(inner, f"faulty-{inner.name}")
        self._lock = threading.Lock()
        self._queued: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._lost = False
        self._failed_opens = 0
        self.opens = 0
        self.open_failures = 0

    def inject(self, fault: str, count: int = 1) -> None:
        if fault not in self._queued:
            raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS}")
        with self._lock:
            self._queued[fault] += count

    def lose(self, failed_opens: int = 0) -> None:
        with self._lock:
            self._lost = True
            self._failed_opens = failed_opens

    def _take(self, fault: str) -> bool:
        with self._lock:
            if self._queued[fault] > 0:
                self._queued[fault] -= 1
                return True
            return False

    # -- FrameSource -------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._failed_opens > 0:
                self._failed_opens -= 1
                self.open_failures += 1
                raise SourceError("camera not found (injected)", "plug it back in")
            self._lost = False
        self.inner.open()
        self.opens += 1

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        with self._lock:
            lost = self._lost
        if lost:
            raise SourceLost("camera unplugged (injected)")
        if self._take("timeout"):
            return None
        if self._take("error"):
            raise RuntimeError("producer error (injected)")
        info = self.inner.read_into(slot, timeout_s)
        if info is None:
            return None
        if self._take("skip"):
            raise FrameSkipped("truncated")
        if self._take("black"):
            slot[...] = 0
        elif self._take("saturated"):
            slot[...] = 255
        return info
