"""Probes inside a running daemon: CPU per thread, stage times, capture-to-decision.

`thread_cpu` reads every thread's CPU time from the kernel, which counts it in 10 ms
ticks: over N frames a per-frame figure is good to 10 / N ms (the inspection
thread's is read to the nanosecond by `SharedEngine` with `time.thread_time`).
`StageRecorder` keeps every stage duration the inspection thread reports, and
`LatencyProbe` the time from each frame's capture stamp to the end of its decision.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psutil

from rope_inspect.service.daemon import Daemon


def thread_cpu(native: str = "onnxruntime pool") -> dict[str, float]:
    """CPU seconds so far of each live thread of this process, grouped by role;
    threads Python did not start (ORT's pool, a GenTL producer's) are `native`."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    spent: dict[str, float] = defaultdict(float)
    for thread in psutil.Process().threads():
        name = names.get(thread.id)
        if name is None:
            group = native
        elif name.startswith("rope-render"):
            group = "rope-render"
        elif name.startswith("acquire-"):
            group = "acquire"
        else:
            group = name
        spent[group] += thread.user_time + thread.system_time
    return dict(spent)


class StageRecorder:
    """Every stage duration the inspection thread reports (a StageTimes sink)."""

    def __init__(self, chained: Callable[[str, float], None] | None) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.chained = chained

    def __call__(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)
        if self.chained is not None:
            self.chained(stage, seconds)


def record_stages(daemon: Daemon) -> StageRecorder:
    """Install a StageRecorder as the daemon's stage-time sink (before start)."""
    recorder = StageRecorder(daemon.times.sink)
    daemon.times.sink = recorder
    return recorder


class LatencyProbe:
    """Capture-to-decision latency of every frame the daemon judges.

    `attach(daemon)` (before start) wraps the daemon's per-frame callback; on its
    first call it adds this probe to the inspection stage's frame observers, which
    are called right after each frame's decision.
    """

    def __init__(self) -> None:
        self.latency_s: list[float] = []
        self.total_s: list[float] = []
        self.recorder: StageRecorder | None = None
        self._daemon: Daemon | None = None
        self._attached = False

    def attach(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.recorder = record_stages(daemon)
        chained = daemon.on_frame

        def on_frame(taken: int) -> None:
            if not self._attached and daemon.parts is not None:
                daemon.parts.inspector.observers.append(self)
                self._attached = True
            chained(taken)

        daemon.on_frame = on_frame  # type: ignore[method-assign, assignment]

    def observe(self, frame: Any, inspected: bool) -> None:
        if not inspected or self.recorder is None:
            return
        self.latency_s.append((time.monotonic_ns() - frame.timestamp_ns) * 1e-9)
        self.total_s.append(self.recorder.samples["total"][-1])
