"""Scoring a run against ground truth: the synthetic line and the MVTec-layout replay.

The synthetic rope line knows every defect it rendered (type, rope position, extent):
`SyntheticScorer` counts a defect as found when a stored defect overlaps its extent
along the rope within a tolerance, and reports recall per defect type and false alarms
per 100 m of rope inspected. `mask_path_for` maps a replayed MVTec-layout photograph to
its ground-truth mask, for `groundtruth_masks.MaskScorer`. Only frames that were
inspected count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rope_inspect.frame import Frame


@dataclass(frozen=True)
class FoundDefect:
    """A defect the daemon stored, as the scorers see it."""

    frame_index: int
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
    position_m: float | None
    length_m: float  # extent along the rope


def along_rope_px(bbox: tuple[int, int, int, int], axis: str) -> int:
    x0, y0, x1, y1 = bbox
    return (x1 - x0) if axis == "horizontal" else (y1 - y0)


@dataclass
class _Truth:
    kind: str
    position_m: float
    length_m: float
    inspected: bool = False
    matched: bool = False


@dataclass
class _Found:
    defect: FoundDefect
    hit: bool = False


# Records this many frame spans behind the newest frame are settled into counts: the
# rope has moved on, so no later frame or stored defect can still concern them.
SETTLE_SPANS = 5.0
SETTLE_EVERY = 16  # inspected frames between two settlements


class SyntheticScorer:
    """Recall per defect type and false alarms per 100 m on the synthetic line.

    Memory stays flat however long the line runs: defects (rendered and stored) that
    the rope has carried `SETTLE_SPANS` frame widths past the newest frame are
    matched once and folded into counters.
    """

    def __init__(self, mm_per_px: float, axis: str, tolerance_m: float = 0.02) -> None:
        self.m_per_px = mm_per_px / 1000.0
        self.axis = axis
        self.tolerance_m = tolerance_m
        self.truth: dict[int, _Truth] = {}  # not yet settled
        self.found: list[_Found] = []  # not yet settled
        self.covered_m = 0.0
        self._covered_end: float | None = None
        self._settled_below_m = -math.inf
        self._per_type: dict[str, dict[str, Any]] = defaultdict(_type_row)
        self._false_alarms = 0
        self._truth_seen = 0
        self._stored = 0
        self._inspected = 0

    def observe(self, frame: Frame, inspected: bool) -> None:
        """Note the frame's truth defects (and, when inspected, its rope length)."""
        for t in frame.truth:
            length = along_rope_px(t.bbox, self.axis) * self.m_per_px
            if t.position_m + length / 2 + self.tolerance_m < self._settled_below_m:
                continue  # settled already
            known = self.truth.get(t.defect_id)
            if known is None:
                known = self.truth[t.defect_id] = _Truth(t.kind, t.position_m, length)
                self._truth_seen += 1
            known.length_m = max(known.length_m, length)
            known.inspected = known.inspected or inspected
        if inspected and frame.position_m is not None:
            # only inspected frames move the decision on: a defect still open there
            # is emitted on a later inspected frame, however many were skipped between
            span = self._span_m(frame)
            self._cover(float(frame.position_m), span)
            self._inspected += 1
            if self._inspected % SETTLE_EVERY == 0:  # not a list per frame
                self._settle(float(frame.position_m) - SETTLE_SPANS * span)

    def _span_m(self, frame: Frame) -> float:
        height, width = frame.image.shape[:2]
        return (width if self.axis == "horizontal" else height) * self.m_per_px

    def _cover(self, position_m: float, span: float) -> None:
        start = position_m - span / 2
        end = start + span
        if self._covered_end is None or start >= self._covered_end:
            self.covered_m += span
        elif end > self._covered_end:
            self.covered_m += end - self._covered_end
        self._covered_end = max(end, self._covered_end or end)

    def add(self, found: FoundDefect) -> None:
        self.found.append(_Found(found))
        self._stored += 1

    def _matches(self, found: FoundDefect, truth: _Truth) -> bool:
        if found.position_m is None:
            return False
        gap = abs(found.position_m - truth.position_m)
        return gap <= (found.length_m + truth.length_m) / 2 + self.tolerance_m

    def _settle(self, below_m: float) -> None:
        """Fold every record wholly behind `below_m` into the counters."""
        self._settled_below_m = max(self._settled_below_m, below_m)
        for found in [f for f in self.found if _found_end(f.defect) < below_m]:
            hits = [t for t in self.truth.values() if self._matches(found.defect, t)]
            for truth in hits:
                truth.matched = True
            self._false_alarms += not (hits or found.hit)
            self.found.remove(found)
        for defect_id, truth in list(self.truth.items()):
            if truth.position_m + truth.length_m / 2 + self.tolerance_m >= below_m:
                continue
            for found in self.found:
                if self._matches(found.defect, truth):
                    found.hit = truth.matched = True
            _count(self._per_type, truth, truth.matched)
            del self.truth[defect_id]

    def report(self) -> dict[str, Any]:
        per_type: dict[str, dict[str, Any]] = defaultdict(_type_row)
        for kind, row in self._per_type.items():
            per_type[kind] = dict(row)
        false_alarms = self._false_alarms
        for record in self.found:
            hits = [t for t in self.truth.values() if self._matches(record.defect, t)]
            false_alarms += not (hits or record.hit)
        for truth in self.truth.values():
            live = any(self._matches(f.defect, truth) for f in self.found)
            _count(per_type, truth, truth.matched or live)
        for row in per_type.values():
            row["recall"] = (
                round(row["found"] / row["seen"], 4) if row["seen"] else None
            )
        seen = sum(r["seen"] for r in per_type.values())
        found = sum(r["found"] for r in per_type.values())
        per_100m = 100.0 * false_alarms / self.covered_m if self.covered_m else None
        return {
            "kind": "synthetic",
            "rope_inspected_m": round(self.covered_m, 3),
            "defects_in_inspected_frames": seen,
            "defects_rendered_seen": self._truth_seen,
            "found": found,
            "recall": round(found / seen, 4) if seen else None,
            "per_type": dict(sorted(per_type.items())),
            "stored_defects": self._stored,
            "false_alarms": false_alarms,
            "false_alarms_per_100m": None if per_100m is None else round(per_100m, 3),
            "tolerance_m": self.tolerance_m,
        }


def _type_row() -> dict[str, Any]:
    return {"seen": 0, "found": 0, "missed": 0}


def _found_end(found: FoundDefect) -> float:
    if found.position_m is None:
        return -math.inf  # no position: it can match nothing, settle it at once
    return found.position_m + found.length_m / 2


def _count(per_type: dict[str, dict[str, Any]], truth: _Truth, found: bool) -> None:
    if not truth.inspected:
        return
    row = per_type[truth.kind]
    row["seen"] += 1
    row["found" if found else "missed"] += 1


def mask_path_for(image: Path) -> Path | None:
    """test/<type>/NNN.png -> ground_truth/<type>/NNN_mask.png; None for good images."""
    kind = image.parent.name
    if kind == "good":
        return None
    return image.parent.parent.parent / "ground_truth" / kind / f"{image.stem}_mask.png"
