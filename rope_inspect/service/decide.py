"""The decision stage in the daemon: anomaly map -> defects -> reject + defect store.

Per inspected frame: the frame gets its rope position, `DefectFinder` turns the map
into blobs, `DefectTracker` merges them with earlier frames. When a frame becomes a
defect's best view its crop (and map crop, and the frame when configured) is copied
right then, because the ring slot is reused soon. When the tracker emits a defect (the
rope carried it out of view) its reject is scheduled for when it reaches the actuator
and its record goes to the store, which never blocks. The record is queued before the
reject is scheduled, so what became of the reject (fired, late, failed: an output did
not switch, not fired at shutdown) always finds it: the scheduler reports each
outcome on its own thread and it is written back to the store at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rope_inspect.config import InspectConfig
from rope_inspect.decision.calibration import Calibration
from rope_inspect.decision.defects import DefectFinder
from rope_inspect.decision.position import RopeGeometry, RopePosition
from rope_inspect.decision.tracker import Defect, DefectTracker
from rope_inspect.frame import Frame
from rope_inspect.log import get_logger
from rope_inspect.reject.scheduler import PendingReject, RejectScheduler
from rope_inspect.service.groundtruth import (
    FoundDefect,
    SyntheticScorer,
)
from rope_inspect.service.groundtruth_masks import MaskScorer
from rope_inspect.service.stats import Counters, StageTimes
from rope_inspect.storage import DefectRecord, DefectStore
from rope_inspect.storage.files import crop_around

log = get_logger(__name__)


@dataclass
class _View:
    """The crops of a defect's best view, copied out of the ring slot."""

    crop: np.ndarray
    map_crop: np.ndarray
    crop_box: tuple[int, int, int, int]
    frame: np.ndarray | None
    source_name: str | None


class LinePosition:
    """Rope coordinate of each frame, and of the camera centre now (for rejects).

    A source that knows its frames' positions (the synthetic line) is used as is; a
    replay of separate photographs is spaced by its frame counter (speed / fps per
    frame); a camera uses `RopePosition` (speed or encoder). `now()` extrapolates
    from the last frame at the current speed.
    """

    def __init__(self, cfg: InspectConfig) -> None:
        self.rope = RopePosition(cfg.line)
        src = cfg.source
        self.per_frame_m = (
            cfg.line.speed_m_per_s / src.fps if src.kind == "replay" else None
        )
        self._last = (0.0, time.monotonic_ns())

    def of(self, frame: Frame) -> float:
        if frame.position_m is not None:
            position = float(frame.position_m)
        elif self.per_frame_m is not None:
            position = frame.camera_frame_id * self.per_frame_m
        else:
            position = self.rope.at(frame.timestamp_ns, frame.encoder_count)
        self._last = (position, frame.timestamp_ns)
        return position

    def now(self) -> float:
        position, stamp_ns = self._last
        return position + (time.monotonic_ns() - stamp_ns) * 1e-9 * self.speed

    @property
    def speed(self) -> float:
        return self.rope.speed_m_per_s


def make_scorer(
    cfg: InspectConfig, calibration: Calibration
) -> SyntheticScorer | MaskScorer | None:
    """The ground-truth scorer that fits the source, if any."""
    if cfg.source.kind == "synthetic":
        return SyntheticScorer(
            calibration.mm_per_px,
            cfg.line.rope_axis,
            tolerance_m=max(cfg.decision.merge_distance_m, 0.01),
        )
    if (
        cfg.source.kind == "replay"
        and (cfg.source.path.parent / "ground_truth").is_dir()
    ):
        return MaskScorer(cfg.source.path)
    return None


class DefectOutputs:
    """Decision, reject scheduling and storing (see the module docstring)."""

    def __init__(
        self,
        cfg: InspectConfig,
        calibration: Calibration,
        store: DefectStore,
        scheduler: RejectScheduler,
        position: LinePosition,
        counters: Counters,
        times: StageTimes,
        scorer: SyntheticScorer | MaskScorer | None = None,
    ) -> None:
        self.cfg = cfg
        self.calibration = calibration
        self.store = store
        self.scheduler = scheduler
        self.position = position
        self.counters = counters
        self.times = times
        self.scorer = scorer
        self.finder = DefectFinder(calibration, cfg.decision)
        self.tracker: DefectTracker | None = None
        self._views: dict[int, _View] = {}
        self._rejects_on = bool(cfg.reject.outputs)
        self.last_reject_error = ""
        scheduler.on_outcome = self._on_outcome

    def process(
        self, frame: Frame, anomaly_map: np.ndarray, envelope: np.ndarray
    ) -> int:
        """Judge one inspected frame; return how many defects were emitted."""
        if self.tracker is None:
            geometry = RopeGeometry.from_config(
                self.cfg.line, self.calibration.mm_per_px, frame.image.shape
            )
            self.tracker = DefectTracker(self.cfg.decision, geometry)
        position = self.position.of(frame)
        found = self.finder.find(anomaly_map, envelope)
        self.counters.add("blobs", len(found.blobs))
        update = self.tracker.update(
            frame.index, frame.timestamp_ns, position, found.blobs
        )
        for view in update.best_views:
            self._keep_view(view.defect.id, frame, anomaly_map, view.bbox)
        with self.times.time("output"):
            for defect in update.emitted:
                self._emit(defect)
        return len(update.emitted)

    def _keep_view(
        self, defect_id: int, frame: Frame, anomaly_map: np.ndarray, bbox: Any
    ) -> None:
        crop, map_crop, box = crop_around(
            frame.image,
            anomaly_map,
            bbox,
            margin=self.cfg.store.crop_margin_px,
            min_side=self.cfg.store.crop_min_px,
        )
        keep_frame = self.cfg.store.save_full_frame
        self._views[defect_id] = _View(
            crop,
            map_crop,
            box,
            frame.image.copy() if keep_frame else None,
            frame.source_name,
        )

    def _record(self, defect: Defect, view: _View | None) -> DefectRecord:
        age_s = (time.monotonic_ns() - defect.best_timestamp_ns) * 1e-9
        extra: dict[str, Any] = {
            "length_mm": round(defect.length_mm, 2),
            "frames_seen": defect.frames_seen,
            "start_m": round(defect.start_m, 4),
            "end_m": round(defect.end_m, 4),
            "first_frame": defect.first_frame,
            "last_frame": defect.last_frame,
        }
        if view is not None and view.source_name:
            extra["source_name"] = view.source_name
        return DefectRecord.create(
            line=self.cfg.line.name,
            position_m=round(defect.position_m, 4),
            frame_index=defect.best_frame,
            bbox=defect.best_bbox,
            area_px=defect.best_area_px,
            area_mm2=round(defect.best_area_mm2, 3),
            score=round(defect.score, 5),
            epoch=time.time() - age_s,
            threshold=self.calibration.pixel_threshold,
            crop_box=view.crop_box if view is not None else None,
            reject_state="scheduled" if self._rejects_on else "none",
            extra=extra,
        )

    def _emit(self, defect: Defect) -> None:
        view = self._views.pop(defect.id, None)
        record = self._record(defect, view)
        if view is None:
            log.error("defect_without_view", defect=defect.id, record=record.id)
            self.counters.add("defects_store_refused")
        # the view's arrays are private copies (crop_around, frame.image.copy())
        elif self.store.add(record, view.crop, view.map_crop, view.frame, copy=False):
            self.counters.add("defects_stored")
        else:
            self.counters.add("defects_store_refused")
        if self._rejects_on:  # after store.add: its outcome finds the record
            reject = self.scheduler.schedule(
                defect.position_m, defect.end_m - defect.start_m, defect_id=record.id
            )
            if reject is not None:
                self.counters.add("rejects_scheduled")
        if self.scorer is not None:
            self.scorer.add(
                FoundDefect(
                    defect.best_frame,
                    defect.best_bbox,
                    defect.position_m,
                    defect.end_m - defect.start_m,
                )
            )
        log.info(
            "defect",
            id=record.id,
            position_m=record.position_m,
            length_mm=record.extra["length_mm"],
            area_mm2=record.area_mm2,
            score=record.score,
            frames=defect.frames_seen,
        )

    def _on_outcome(self, reject: PendingReject) -> None:
        """What became of a reject (scheduler thread): its record's reject state."""
        if reject.outcome == "fired":
            state = "late" if reject.late else "fired"
        elif reject.outcome in ("failed", "not_fired"):
            state = reject.outcome
        else:
            return
        if reject.outcome == "failed":
            self.last_reject_error = reject.error
        if reject.defect_id is not None:
            self.store.set_reject_state(str(reject.defect_id), state)

    def flush(self) -> int:
        """Emit every open defect (end of run); return how many."""
        if self.tracker is None:
            return 0
        emitted = self.tracker.flush()
        for defect in emitted:
            self._emit(defect)
        self.counters.add("defects", len(emitted))
        return len(emitted)

    def shutdown(self, flush: bool = True) -> dict[str, Any]:
        """Stop the scheduler (pending rejects: not fired), then flush the tracker.

        The defects still open at shutdown are emitted after the scheduler closed:
        their rejects are logged as not fired and their records stored as such.
        """
        self.scheduler.shutdown()  # each pending reject reported as not fired
        flushed = self.flush() if flush else 0
        not_fired = self.scheduler.stats().not_fired
        return {"flushed_defects": flushed, "rejects_not_fired": not_fired}

    def stats(self) -> dict[str, int]:
        reject = self.scheduler.stats()
        return {
            "rejects_fired": reject.fired,
            "rejects_failed": reject.failed,
            "rejects_late": reject.late,
            "rejects_not_fired": reject.not_fired,
            "reject_output_errors": reject.output_errors,
            "rejects_pending": reject.pending,
        }
