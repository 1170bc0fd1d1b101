"""The daemon's acquisition stage: the frame source, its ring and its health beats.

`MonitoredSource` wraps any FrameSource and reports to the HealthMonitor every time a
`read_into` or `open` call returns (a frame, a timeout or an error), so a camera call
that hangs stops the beats and, after `metrics.stuck_after_s`, the watchdog pings. A
lost camera is not a hang: while the Acquirer reconnects with backoff the stage is
marked inactive, the fault output is raised, and both are undone on reconnect.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import FrameInfo, FrameSource, SourceWrapper
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import InspectConfig
from rope_inspect.service.faults import FaultState
from rope_inspect.service.notify import HealthMonitor

STAGE = "acquisition"
FREE_SLOT_WAIT_S = 0.1  # longest wait for a free slot between health beats


class MonitoredSource(SourceWrapper):
    """A FrameSource that beats the health monitor whenever one of its calls returns.

    With `lossless` (a finite replay read flat out, where every frame must be
    inspected) each `read_into` returns only once the ring has a free slot for the
    next frame, so the ring never has to drop one: the source waits for the
    inspector instead of the inspector losing frames.
    """

    def __init__(
        self, source: FrameSource, health: HealthMonitor, lossless: bool = False
    ) -> None:
        super().__init__(source)
        self.health = health
        self.lossless = lossless
        self.ring: FrameRing | None = None
        self.stop_event = threading.Event()
        self.read_seconds = 0.0
        self.reads = 0
        self.waits = 0

    def open(self) -> None:
        try:
            self.inner.open()
        finally:
            self.health.beat(STAGE)

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        started = time.perf_counter()
        try:
            info = self.inner.read_into(slot, timeout_s)
        finally:
            self.read_seconds += time.perf_counter() - started
            self.reads += 1
            self.health.beat(STAGE)
        if info is not None and self.lossless:
            self._wait_for_free_slot()
        return info

    def _wait_for_free_slot(self) -> None:
        """Block (beating) until the ring has a free slot besides the one being read.

        The ring wakes this wait when the inspector releases a slot: no polling.
        """
        ring = self.ring
        if ring is None:
            return
        while not self.stop_event.is_set():
            if ring.wait_for_free_slot(0.0):
                return
            self.waits += 1
            self.health.beat(STAGE)
            ring.wait_for_free_slot(FREE_SLOT_WAIT_S)


def acquirer_settings(cfg: InspectConfig) -> dict[str, Any]:
    """Timeouts and reconnect backoff for the Acquirer, from the source config."""
    source = cfg.source
    if source.kind == "genicam":
        return {
            "timeout_s": source.timeout_s,
            "backoff_s": tuple(source.reconnect_backoff_s),
            "lost_after_timeouts": source.lost_after_timeouts,
        }
    # rendered and replayed frames come at once; a few missed periods mean trouble
    period = 1.0 / source.fps
    return {
        "timeout_s": max(1.0, 3 * period),
        "backoff_s": (0.2, 5.0),
        "lost_after_timeouts": 5,
    }


def build_acquirer(
    cfg: InspectConfig,
    source: MonitoredSource,
    health: HealthMonitor,
    faults: FaultState,
) -> tuple[FrameRing, Acquirer]:
    """The ring (sized from the open source) and the Acquirer (not started)."""
    ring = FrameRing(cfg.ring.slots, tuple(source.frame_shape))  # type: ignore[arg-type]
    source.ring = ring

    def on_fault(active: bool, reason: str) -> None:
        if active:
            health.finish(STAGE)  # reconnecting with backoff is not a hang
        else:
            health.beat(STAGE)
        faults.set("camera_lost", active, reason)

    acquirer = Acquirer(source, ring, on_fault=on_fault, **acquirer_settings(cfg))
    return ring, acquirer
