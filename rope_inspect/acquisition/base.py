"""The frame source interface of the acquisition stage, and the factory that builds one.

Every source (GenICam camera, replay, synthetic rope line) copies one image per call
into a preallocated ring slot (`read_into`) and returns a `FrameInfo` describing it.
The acquisition thread (`Acquirer`) drives a source; nothing else calls it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from rope_inspect.config import LineConfig, SourceConfig


class SourceFinished(Exception):
    """Raised by `read_into` of a finite source (replay without loop) after its end."""


class FrameSkipped(Exception):
    """Raised by `read_into` when the source had a frame but could not use it.

    The reason (truncated, wrong_size, unknown_format, unreadable) is counted by the
    source and logged once per frame; the camera is alive, so it is not a timeout.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TruthDefect:
    """A known defect in one frame (synthetic line ground truth).

    `bbox` is (x0, y0, x1, y1) in frame pixels, end exclusive; `mask` is the bool
    pixel mask of the defect inside that box. `position_m` is the rope position of
    the defect centre; `defect_id` is the same in every frame that shows the defect.
    """

    defect_id: int
    kind: str
    position_m: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray

    def full_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The defect mask as a bool H x W array of the frame size."""
        out = np.zeros(shape[:2], dtype=bool)
        x0, y0, x1, y1 = self.bbox
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass(slots=True)
class FrameInfo:
    """What a source knows about the image it just copied into a slot.

    `timestamp_ns` is host `time.monotonic_ns()` at arrival; `camera_frame_id` is the
    camera's own frame counter (gaps mean frames lost before the host saw them).
    """

    timestamp_ns: int
    camera_frame_id: int
    position_m: float | None = None
    encoder_count: int | None = None
    source_name: str | None = None
    truth: tuple[TruthDefect, ...] = ()


@runtime_checkable
class FrameSource(Protocol):
    """One camera or stand-in. Not thread-safe: one acquisition thread uses it."""

    name: str

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """H x W x 3 of the frames `read_into` writes; valid after `open()`."""
        ...

    @property
    def node_map(self) -> Any | None:
        """The camera's GenICam node map (for the camera line output), else None."""
        ...

    @property
    def counters(self) -> dict[str, int]:
        """Per-source event counts (truncated, wrong_size, unreadable, ...)."""
        ...

    def open(self) -> None:
        """Connect and start streaming; raises SourceError with a hint."""
        ...

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        """Copy the next image into `slot`; None on timeout.

        Raises SourceLost when the source stopped delivering, FrameSkipped for an
        unusable frame, SourceFinished at the end of a finite source.
        """
        ...

    def close(self) -> None:
        """Stop streaming and free the device; safe to call twice."""
        ...


class SourceWrapper:
    """A FrameSource that passes every call to `inner`; subclasses override a few.

    `name` defaults to the inner source's name. Fault injection and health
    monitoring wrap a real source this way, so the rest of the path stays real.
    """

    def __init__(self, inner: FrameSource, name: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name if name is None else name

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.inner.frame_shape

    @property
    def node_map(self) -> Any | None:
        return self.inner.node_map

    @property
    def counters(self) -> dict[str, int]:
        return self.inner.counters

    def open(self) -> None:
        self.inner.open()

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        return self.inner.read_into(slot, timeout_s)

    def close(self) -> None:
        self.inner.close()


class FramePacer:
    """Paces a rendered or replayed source at a frame rate on the monotonic clock.

    `realtime=False` never waits. The schedule is absolute (frame n is due at
    start + n / fps), so a late frame does not delay the ones after it.
    """

    def __init__(
        self,
        fps: float,
        realtime: bool,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.period_s = 1.0 / fps
        self.realtime = realtime
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def restart(self) -> None:
        """Start a new schedule at the next call."""
        self._next = None

    def wait(self, timeout_s: float) -> bool:
        """Wait for the next frame's time; False if it is more than timeout_s away."""
        if not self.realtime:
            return True
        now = self._clock()
        if self._next is None:
            self._next = now
        delay = self._next - now
        if delay > timeout_s:
            self._sleep(timeout_s)
            return False
        if delay > 0:
            self._sleep(delay)
        if delay < -self.period_s * 4:
            # far behind (a stall): restart the schedule instead of bursting
            self._next = self._clock()
        self._next += self.period_s
        return True


class Counters:
    """Thread-safe named event counts of a source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def open_source(
    source_cfg: SourceConfig, line: LineConfig | None = None
) -> FrameSource:
    """Build the frame source a config section describes (not yet opened).

    `line` gives the synthetic rope line its speed; it defaults to `LineConfig()`.
    """
    from rope_inspect.config import (
        GenICamSourceConfig,
        LineConfig,
        ReplaySourceConfig,
        SyntheticSourceConfig,
    )

    if isinstance(source_cfg, GenICamSourceConfig):
        from rope_inspect.acquisition.genicam import GenICamSource

        return GenICamSource(source_cfg)
    if isinstance(source_cfg, ReplaySourceConfig):
        from rope_inspect.acquisition.replay import ReplaySource

        return ReplaySource(source_cfg)
    if isinstance(source_cfg, SyntheticSourceConfig):
        from rope_inspect.acquisition.synthetic import SyntheticSource

        return SyntheticSource(source_cfg, line or LineConfig())
    raise TypeError(f"unknown source config {type(source_cfg).__name__}")
