"""Probes of the memory benchmark: RSS beside what glibc's malloc and Python hold.

RSS alone cannot say why it grows. Sampled with it: the bytes malloc holds from the
system (its arenas and mmaps), the bytes in use in them (`mallinfo2`, all arenas)
and Python's allocated blocks (`sys.getallocatedblocks`). Objects that pile up
raise the in-use bytes or the blocks; an allocator that keeps freed memory raises
the heap (and RSS) alone.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import psutil

if TYPE_CHECKING:
    from rope_inspect.service.daemon import Daemon


class MallInfo(ctypes.Structure):
    """glibc's `struct mallinfo2` (all arenas)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def malloc_info() -> Callable[[], tuple[int, int]] | None:
    """() -> (bytes malloc holds from the system, bytes in use); None without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = MallInfo

    def read() -> tuple[int, int]:
        info = mallinfo2()
        return info.arena + info.hblkhd, info.uordblks + info.hblkhd

    return read


MAX_SAMPLES = 1 << 16  # 4.5 h at 4 Hz; later samples are dropped


class RssSampler:
    """(frames taken, RSS, malloc heap, malloc in use, Python blocks) every
    `period_s` while a daemon runs: where RSS grows, the other columns say whether
    objects grow (in use, Python blocks) or the allocator keeps more (heap).

    The samples go into rows written in full up front: a growing list of tuples
    would itself raise RSS ~10 KiB per 1000 frames and Python's blocks by ~6 each.
    """

    def __init__(self, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self._rows = np.full((MAX_SAMPLES, 5), -1, np.int64)  # every page resident
        self._count = 0
        self._stop = threading.Event()
        self._daemon: Daemon | None = None
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    @property
    def samples(self) -> list[tuple[int, ...]]:
        return [tuple(row) for row in self._rows[: self._count].tolist()]

    def attach(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._thread.start()

    def _run(self) -> None:
        process = psutil.Process()
        malloc = malloc_info() or (lambda: (0, 0))
        while not self._stop.wait(self.period_s) and self._count < MAX_SAMPLES:
            if self._daemon is not None:
                row = self._rows[self._count]
                row[0] = self._daemon.counters.get("frames_taken")
                row[1] = process.memory_info().rss
                row[2], row[3] = malloc()
                row[4] = sys.getallocatedblocks()
                self._count += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def baseline_slope(x: np.ndarray, y: np.ndarray, frames: int) -> float:
    """Slope per 1000 frames of the lowest `y` in each 5 % of the frames (refreshes,
    defects and the store's writes add spikes that are freed again)."""
    bins = np.minimum((x / (frames * 0.05)).astype(int), 19)
    low_x = np.array([x[bins == b].mean() for b in np.unique(bins)])
    low_y = np.array([y[bins == b].min() for b in np.unique(bins)])
    return float(np.polyfit(low_x, low_y, 1)[0]) * 1000
