"""The inspection stage: one thread that takes frames from the ring and judges them.

Per frame: image-quality check -> rope envelope (mask tracker) -> tile grid over the
rope -> tiles cut into a preallocated batch -> ONE engine call -> tile maps stitched
into the frame anomaly map -> decision (defects, rejects, store). Each frame taken from
the ring ends in exactly one outcome: inspected, uninspected (engine error or NaN) or
skipped for image quality; every outcome is counted, none is silent. On stop the
thread drains the ring: it ends only when the ring is closed and empty. With a
frame limit (`--max-frames`) it stops taking frames once that many were inspected;
what is still in the ring is counted as left there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import InspectConfig
from rope_inspect.engine.base import Engine
from rope_inspect.frame import Frame
from rope_inspect.log import get_logger
from rope_inspect.service.faults import FaultState
from rope_inspect.service.notify import HealthMonitor
from rope_inspect.service.quality import ImageQualityCheck
from rope_inspect.service.stats import Counters, StageTimes
from rope_inspect.vision.mask_tracker import RopeMaskTracker
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tiling import RopeTiler, TileGrid

log = get_logger(__name__)

STAGE = "inspection"
GET_TIMEOUT_S = 0.2


class DecisionStage(Protocol):
    """What the inspection stage hands each judged frame to (see decide.py)."""

    def process(
        self, frame: Frame, anomaly_map: np.ndarray, envelope: np.ndarray
    ) -> int: ...


class FrameObserver(Protocol):
    """Sees every frame taken from the ring and whether it was inspected (scorers)."""

    def observe(self, frame: Frame, inspected: bool) -> None: ...


class RopeEnvelopes:
    """The rope envelope per frame: tracked (running rope) or per frame (photographs).

    `mask.refresh_every: 1` means every frame is a new scene (a replay of separate
    photographs): the mask is then computed synchronously for each frame instead of
    being refreshed in the background one frame late.
    """

    def __init__(self, cfg: InspectConfig) -> None:
        self.cfg = cfg.mask
        self.axis = cfg.line.rope_axis
        self.per_frame = cfg.mask.refresh_every == 1
        self.tracker = None if self.per_frame else RopeMaskTracker(cfg.mask, self.axis)

    def envelope(self, image: np.ndarray) -> np.ndarray:
        if self.tracker is not None:
            return self.tracker.update(image)
        result = grabcut_rope_mask(
            image, self.axis, self.cfg.downscale, self.cfg.grabcut_iterations
        )
        return rope_envelope(result.mask, self.cfg.envelope_margin_px, self.axis)

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()


class Inspector:
    """The inspection thread (see the module docstring)."""

    def __init__(
        self,
        cfg: InspectConfig,
        ring: FrameRing,
        engine: Engine,
        decision: DecisionStage,
        *,
        health: HealthMonitor,
        counters: Counters,
        times: StageTimes,
        faults: FaultState,
        observers: Sequence[FrameObserver] = (),
        on_frame: Callable[[int], None] | None = None,
        max_inspected: int | None = None,
    ) -> None:
        self.ring = ring
        self.engine = engine
        self.decision = decision
        self.health = health
        self.counters = counters
        self.times = times
        self.faults = faults
        self.observers = list(observers)
        self.on_frame = on_frame
        self.max_inspected = max_inspected
        self.quality = ImageQualityCheck(ring.shape)
        self.envelopes = RopeEnvelopes(cfg)
        self.tiler = RopeTiler(cfg.tiling, cfg.line.rope_axis)
        self.quality_reason: str | None = None
        self._infer_frame = getattr(engine, "infer_frame", None)
        self._frame_map = np.zeros(ring.shape[:2], np.float32)
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread ------------------------------------------------------------------

    def start(self) -> None:
        self.health.register(STAGE)
        self._thread = threading.Thread(target=self._run, name="inspect", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> bool:
        """Wait for the drain to end; True when the thread has ended."""
        if self._thread is None:
            return True
        self._thread.join(max(0.0, timeout_s))
        return not self._thread.is_alive()

    def abort(self) -> None:
        """Stop after the current frame even if the ring still holds frames."""
        self._abort.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        log.info("inspection_started")
        try:
            while not self._abort.is_set():
                frame = self.ring.get(GET_TIMEOUT_S)
                self.health.beat(STAGE)
                if frame is None:
                    if self.ring.closed:
                        break
                    continue
                try:
                    self._process_safely(frame)
                finally:
                    self.ring.release(frame)
                self.health.beat(STAGE)
                inspected = self.counters.get("frames_inspected")
                if self.on_frame is not None:
                    self.on_frame(inspected)
                if self.max_inspected is not None and inspected >= self.max_inspected:
                    log.info("inspection_limit_reached", inspected=inspected)
                    break
        finally:
            self.health.finish(STAGE)
            self.envelopes.close()
            log.info("inspection_stopped", **self.counters.snapshot())

    def _process_safely(self, frame: Frame) -> None:
        self.counters.add("frames_taken")
        started = time.perf_counter()
        try:
            inspected = self.process(frame)
        except Exception as exc:  # a bug must not stop the line: count, log, go on
            log.exception("inspection_failed", frame=frame.index, error=str(exc))
            self.counters.add("frames_uninspected")
            self.faults.set("inspection_error", True, str(exc))
            inspected = False
        self.times.observe("total", time.perf_counter() - started)
        for observer in self.observers:
            observer.observe(frame, inspected)

    # -- one frame ---------------------------------------------------------------

    def _quality_ok(self, frame: Frame) -> bool:
        with self.times.time("quality"):
            reason = self.quality.check(frame.image)
        if reason is None:
            if self.quality_reason is not None:
                log.info("image_quality_recovered", frame=frame.index)
                self.faults.set("image_quality", False)
                self.quality_reason = None
            return True
        self.counters.add("frames_quality_skipped")
        if reason != self.quality_reason:
            self.counters.add("image_quality_alarms")
            log.error("image_quality_alarm", frame=frame.index, reason=reason)
            self.faults.set("image_quality", True, reason)
            self.quality_reason = reason
        return False

    def _engine_map(self, frame: Frame, grid: TileGrid) -> np.ndarray:
        """The frame anomaly map from ONE engine call (cut and stitch around it).

        An engine with `infer_frame` (TensorRT) cuts, stitches and masks on the GPU.
        """
        if self._infer_frame is not None:
            with self.times.time("engine"):
                out, _ = self._infer_frame(frame.image, grid, self._frame_map)
            return out
        with self.times.time("tiles"):
            tiles = self.tiler.cut(frame.image, grid)
        with self.times.time("engine"):
            maps, _ = self.engine.infer(tiles)  # backends refuse NaN (EngineError)
        with self.times.time("stitch"):
            return self.tiler.stitch(maps, grid)

    def _anomaly_map(self, frame: Frame, grid: TileGrid) -> np.ndarray | None:
        """The frame's anomaly map, or None when the engine failed (uninspected)."""
        if self._frame_map.shape != grid.shape:
            self._frame_map = np.zeros(grid.shape, np.float32)
        if grid.count == 0:  # no rope in view: nothing to infer
            self.counters.add("frames_without_rope")
            self._frame_map.fill(0.0)
            return self._frame_map
        try:
            anomaly_map = self._engine_map(frame, grid)
        except Exception as exc:
            self.counters.add("engine_errors")
            self.counters.add("frames_uninspected")
            log.error("frame_uninspected", frame=frame.index, error=str(exc))
            self.faults.set("engine", True, str(exc))
            return None
        self.counters.add("engine_calls")
        self.faults.set("engine", False)
        self.faults.set("inspection_error", False)
        return anomaly_map

    def process(self, frame: Frame) -> bool:
        """Judge one frame; True when it was inspected."""
        if not self._quality_ok(frame):
            return False
        with self.times.time("mask"):
            envelope = self.envelopes.envelope(frame.image)
            grid = self.tiler.grid_for(envelope)
        anomaly_map = self._anomaly_map(frame, grid)
        if anomaly_map is None:
            return False
        self.counters.add("tiles", grid.count)
        with self.times.time("decision"):
            defects = self.decision.process(frame, anomaly_map, envelope)
        self.counters.add("frames_inspected")
        self.counters.add("defects", defects)
        return True
