"""One physical defect seen in consecutive frames is one defect, merged by position.

Each frame's blobs are placed on the rope (`RopeGeometry`) and joined to an open defect
whose rope interval, widened by `merge_distance_m`, they overlap; otherwise they open a
new one. A defect keeps its largest score, the union of its rope intervals, and its best
view: the frame where it scored highest. When a frame becomes a defect's new best view
the update says so, so the daemon copies the crop from that frame right then instead of
keeping whole frames. A defect is emitted once, when the rope has carried it (and its
merge distance) out of the field of view, or at `flush()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rope_inspect.config import DecisionConfig
from rope_inspect.decision.defects import Blob, Box
from rope_inspect.decision.position import RopeGeometry
from rope_inspect.log import get_logger

log = get_logger(__name__)


@dataclass(slots=True)
class Defect:
    """A physical defect and its best view (everything the store record needs).

    Live while open: the tracker updates it in place until it is emitted.
    """

    id: int
    first_frame: int
    last_frame: int
    first_timestamp_ns: int
    start_m: float  # rope interval seen, low end
    end_m: float  # rope interval seen, high end
    across_px: tuple[int, int]  # extent across the rope (frame rows for horizontal)
    score: float
    best_frame: int
    best_timestamp_ns: int
    best_frame_position_m: float
    best_bbox: Box
    best_area_px: int
    best_area_mm2: float
    frames_seen: int = 1
    max_area_px: int = 0

    @property
    def position_m(self) -> float:
        """Rope position of the defect's centre."""
        return (self.start_m + self.end_m) / 2

    @property
    def length_mm(self) -> float:
        return (self.end_m - self.start_m) * 1000.0


@dataclass(frozen=True, slots=True)
class BestView:
    """This frame is defect `defect`'s best view so far: crop `bbox` from it now."""

    defect: Defect
    bbox: Box


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """What changed with one frame: defects first seen, new best views, emitted."""

    opened: tuple[Defect, ...] = ()
    best_views: tuple[BestView, ...] = ()
    emitted: tuple[Defect, ...] = ()


NOTHING = TrackUpdate()


@dataclass(slots=True)
class _Sighting:
    """The blobs of one frame that belong to one defect, merged."""

    low: float
    high: float
    bbox: Box
    area_px: int
    area_mm2: float
    score: float

    @classmethod
    def of(cls, blob: Blob, low: float, high: float) -> _Sighting:
        return cls(low, high, blob.bbox, blob.area_px, blob.area_mm2, blob.score)

    def merge(self, other: _Sighting) -> None:
        x0, y0, x1, y1 = self.bbox
        ox0, oy0, ox1, oy1 = other.bbox
        self.bbox = (min(x0, ox0), min(y0, oy0), max(x1, ox1), max(y1, oy1))
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self.area_px += other.area_px
        self.area_mm2 += other.area_mm2
        self.score = max(self.score, other.score)


class DefectTracker:
    """Merges blobs of consecutive frames into defects (see the module docstring).

    Call `update` once per inspected frame, in frame order, with the frame's blobs
    (an empty list for a good frame: it still moves the field of view on).
    """

    def __init__(self, decision_cfg: DecisionConfig, geometry: RopeGeometry) -> None:
        self.merge_m = decision_cfg.merge_distance_m
        self.geometry = geometry
        self.open: list[Defect] = []
        self.opened_count = 0
        self.emitted_count = 0

    def _sightings(self, position_m: float, blobs: Sequence[Blob]) -> list[_Sighting]:
        """The frame's blobs on the rope, those within the merge distance joined."""
        placed = []
        for blob in blobs:
            x0, y0, x1, y1 = blob.bbox
            start, stop = (x0, x1) if self.geometry.axis == "horizontal" else (y0, y1)
            low, high = self.geometry.span(position_m, start, stop)
            placed.append(_Sighting.of(blob, low, high))
        placed.sort(key=lambda sighting: sighting.low)
        joined: list[_Sighting] = []
        for sighting in placed:
            if joined and sighting.low - joined[-1].high <= self.merge_m:
                joined[-1].merge(sighting)
            else:
                joined.append(sighting)
        return joined

    def _match(self, sighting: _Sighting) -> Defect | None:
        """The open defect nearest to the sighting within the merge distance."""
        best, best_gap = None, float("inf")
        for defect in self.open:
            gap = max(sighting.low - defect.end_m, defect.start_m - sighting.high, 0.0)
            if gap <= self.merge_m and gap < best_gap:
                best, best_gap = defect, gap
        return best

    def _open(
        self, sighting: _Sighting, frame: int, timestamp_ns: int, position_m: float
    ) -> Defect:
        self.opened_count += 1
        defect = Defect(
            id=self.opened_count,
            first_frame=frame,
            last_frame=frame,
            first_timestamp_ns=timestamp_ns,
            start_m=sighting.low,
            end_m=sighting.high,
            across_px=self._across(sighting.bbox),
            score=sighting.score,
            best_frame=frame,
            best_timestamp_ns=timestamp_ns,
            best_frame_position_m=position_m,
            best_bbox=sighting.bbox,
            best_area_px=sighting.area_px,
            best_area_mm2=sighting.area_mm2,
            max_area_px=sighting.area_px,
        )
        self.open.append(defect)
        return defect

    def _across(self, bbox: Box) -> tuple[int, int]:
        x0, y0, x1, y1 = bbox
        return (y0, y1) if self.geometry.axis == "horizontal" else (x0, x1)

    def _extend(
        self, defect: Defect, sighting: _Sighting, frame: int, timestamp_ns: int,
        position_m: float,
    ) -> bool:  # fmt: skip
        """Add a sighting to an open defect; True when this frame is its best view."""
        if defect.last_frame != frame:
            defect.frames_seen += 1
        defect.last_frame = frame
        defect.start_m = min(defect.start_m, sighting.low)
        defect.end_m = max(defect.end_m, sighting.high)
        low, high = self._across(sighting.bbox)
        defect.across_px = (
            min(defect.across_px[0], low),
            max(defect.across_px[1], high),
        )
        defect.max_area_px = max(defect.max_area_px, sighting.area_px)
        if sighting.score <= defect.score:
            return False
        defect.score = sighting.score
        defect.best_frame, defect.best_timestamp_ns = frame, timestamp_ns
        defect.best_frame_position_m = position_m
        defect.best_bbox = sighting.bbox
        defect.best_area_px, defect.best_area_mm2 = sighting.area_px, sighting.area_mm2
        return True

    def update(
        self,
        frame_index: int,
        timestamp_ns: int,
        position_m: float,
        blobs: Sequence[Blob],
    ) -> TrackUpdate:
        """Merge one frame's blobs; emit the defects that have left the view."""
        if not blobs and not self.open:
            return NOTHING
        matched: dict[int, tuple[Defect, _Sighting]] = {}
        fresh: list[_Sighting] = []
        for sighting in self._sightings(position_m, blobs):
            defect = self._match(sighting)
            if defect is None:
                fresh.append(sighting)
            elif defect.id in matched:
                matched[defect.id][1].merge(sighting)
            else:
                matched[defect.id] = (defect, sighting)

        best_views = []
        for defect, sighting in matched.values():
            if self._extend(defect, sighting, frame_index, timestamp_ns, position_m):
                best_views.append(BestView(defect, defect.best_bbox))
        opened = []
        for sighting in fresh:
            defect = self._open(sighting, frame_index, timestamp_ns, position_m)
            opened.append(defect)
            best_views.append(BestView(defect, defect.best_bbox))
        emitted = self._leaving(position_m)
        return TrackUpdate(tuple(opened), tuple(best_views), emitted)

    def _leaving(self, position_m: float) -> tuple[Defect, ...]:
        """Defects no later frame can reach: past the view's low end plus the merge
        distance (rope coordinates in view only grow as the line runs)."""
        view_low = self.geometry.view(position_m)[0]
        gone = tuple(d for d in self.open if d.end_m + self.merge_m < view_low)
        if gone:
            self.open = [d for d in self.open if d.end_m + self.merge_m >= view_low]
            self._log_emitted(gone, "left_view")
        return gone

    def flush(self) -> tuple[Defect, ...]:
        """Emit every open defect (end of run)."""
        gone, self.open = tuple(self.open), []
        self._log_emitted(gone, "flush")
        return gone

    def _log_emitted(self, defects: tuple[Defect, ...], reason: str) -> None:
        self.emitted_count += len(defects)
        for defect in defects:
            log.debug(
                "defect_emitted",
                defect=defect.id,
                reason=reason,
                position_m=round(defect.position_m, 4),
                frames=defect.frames_seen,
                score=round(defect.score, 4),
            )
