"""What every stage of the daemon did: counters, stage times and frame rate.

The inspection stage counts each frame it takes from the ring into exactly one outcome
(inspected, uninspected, skipped for image quality), so the summary can check that
nothing was dropped silently. Stage times are kept as moving averages (for the status
line) and handed to an optional sink (the Prometheus histograms).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# The stages of the inspection path, in data-flow order; "total" is one whole frame.
STAGES = (
    "quality",
    "mask",
    "tiles",
    "engine",
    "stitch",
    "decision",
    "output",
    "total",
)

# Counters kept by the daemon itself (ring, acquirer, scheduler, store keep theirs).
COUNTERS = (
    "frames_taken",
    "frames_inspected",
    "frames_uninspected",
    "frames_quality_skipped",
    "frames_without_rope",
    "image_quality_alarms",
    "engine_errors",
    "engine_nan",
    "tiles",
    "engine_calls",
    "blobs",
    "defects",
    "defects_stored",
    "defects_store_refused",
    "rejects_scheduled",
    "faults_raised",
)


class MovingAverage:
    """Exponential moving average; the first value seeds it."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha
        self.value: float | None = None

    def update(self, sample: float) -> float:
        if self.value is None:
            self.value = sample
        else:
            self.value += self.alpha * (sample - self.value)
        return self.value


class _StageTimer:
    """A reusable `with` block timing one stage: nothing is allocated per use (a
    generator-based context manager costs ~300 B per frame and stage)."""

    __slots__ = ("_stage", "_start", "_times")

    def __init__(self, times: StageTimes, stage: str) -> None:
        self._times = times
        self._stage = stage
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._times.observe(self._stage, time.perf_counter() - self._start)


class StageTimes:
    """Moving average, maximum and count of each stage's duration in seconds.

    `time(stage)` is for the inspection thread (one timer object per stage, reused);
    other threads call `observe` with their own measurement.
    """

    def __init__(
        self,
        stages: tuple[str, ...] = STAGES,
        sink: Callable[[str, float], None] | None = None,
    ) -> None:
        self._avg = {stage: MovingAverage() for stage in stages}
        self._max = dict.fromkeys(stages, 0.0)
        self._count = dict.fromkeys(stages, 0)
        self._timers = {stage: _StageTimer(self, stage) for stage in stages}
        self._lock = threading.Lock()
        self.sink = sink

    def observe(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._avg[stage].update(seconds)
            self._max[stage] = max(self._max[stage], seconds)
            self._count[stage] += 1
        if self.sink is not None:
            self.sink(stage, seconds)

    def time(self, stage: str) -> _StageTimer:
        """`with times.time("engine"): ...` observes the block's duration."""
        return self._timers[stage]

    def average_ms(self) -> dict[str, float]:
        with self._lock:
            return {
                stage: round(avg.value * 1000.0, 3)
                for stage, avg in self._avg.items()
                if avg.value is not None
            }

    def max_ms(self) -> dict[str, float]:
        with self._lock:
            return {s: round(v * 1000.0, 3) for s, v in self._max.items() if v > 0}


class Counters:
    """Named integer counters, safe to bump from several threads."""

    def __init__(self, names: tuple[str, ...] = COUNTERS) -> None:
        self._values = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class RateMeter:
    """Events per second over a sliding window of (time, count) samples.

    One thread samples the running total (`sample`), any thread reads `value`.
    """

    def __init__(
        self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def sample(self, count: int) -> None:
        """Record the running total `count` now."""
        now = self._clock()
        with self._lock:
            self._samples.append((now, count))
            while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
                self._samples.popleft()

    @property
    def value(self) -> float:
        """The rate over the window (0 before two samples)."""
        with self._lock:
            if len(self._samples) < 2:
                return 0.0
            (first_t, first), (last_t, last) = self._samples[0], self._samples[-1]
        span = last_t - first_t
        return (last - first) / span if span > 0 else 0.0
