"""The defect record: what the store keeps about one defect, as JSON and index row.

A record is made by the decision stage (`DefectRecord.create`), handed to the defect
store with its crop and anomaly-map crop, and read back by the review page. Bounding
boxes are `(x0, y0, x1, y1)` in frame pixels, `x1`/`y1` exclusive. Paths are relative
to the store folder and are filled in by the store.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal, get_args

RejectState = Literal["scheduled", "fired", "late", "not_fired", "failed", "none"]
Verdict = Literal["defect", "false_alarm"]
REJECT_STATES: tuple[str, ...] = get_args(RejectState)
VERDICTS: tuple[str, ...] = get_args(Verdict)

ID_PATTERN = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")
_sequence = itertools.count()


def new_defect_id(epoch: float) -> str:
    """A unique id that sorts by time: UTC time to the microsecond, a counter, noise."""
    utc = datetime.fromtimestamp(epoch, tz=timezone.utc)
    stamp = utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond:06d}Z"
    seq = next(_sequence) % 0x10000
    return f"{stamp}-{seq:04x}{secrets.randbelow(0x10000):04x}"


def time_of_id(defect_id: str) -> str | None:
    """The ISO time a store id was made at (see `new_defect_id`); None if not an id."""
    if not ID_PATTERN.match(defect_id):
        return None
    stamp = defect_id[:22]
    return (
        f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:"
        f"{stamp[13:15]}.{stamp[15:21]}Z"
    )


def utc_iso(epoch: float) -> str:
    """ISO 8601 UTC time with microseconds and a Z, as stored in records."""
    utc = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}Z"


def _box(value: Any, name: str) -> tuple[int, int, int, int]:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ValueError(
            f"{name} must be four integers (x0, y0, x1, y1), got {value!r}"
        )
    x0, y0, x1, y1 = (int(v) for v in value)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{name} {value!r} is empty: need x1 > x0 and y1 > y0")
    return (x0, y0, x1, y1)


@dataclass
class DefectRecord:
    """One stored defect. Mutable fields after storing: reject state and verdict."""

    id: str
    time: str
    epoch: float
    line: str
    position_m: float | None
    frame_index: int
    bbox: tuple[int, int, int, int]
    area_px: int
    area_mm2: float | None
    score: float
    threshold: float | None = None
    defect_type: str | None = None
    crop_box: tuple[int, int, int, int] | None = None
    reject_state: RejectState = "scheduled"
    crop: str = ""
    overlay: str = ""
    map: str = ""
    frame: str | None = None
    json: str = ""
    verdict: Verdict | None = None
    verdict_by: str | None = None
    verdict_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        line: str,
        position_m: float | None,
        frame_index: int,
        bbox: tuple[int, int, int, int],
        area_px: int,
        area_mm2: float | None,
        score: float,
        epoch: float,
        **optional: Any,
    ) -> DefectRecord:
        """A new record with a fresh id, its time taken from `epoch` (time.time())."""
        record = cls(
            id=new_defect_id(epoch),
            time=utc_iso(epoch),
            epoch=float(epoch),
            line=line,
            position_m=position_m,
            frame_index=frame_index,
            bbox=bbox,
            area_px=area_px,
            area_mm2=area_mm2,
            score=score,
            **optional,
        )
        record.check()
        return record

    def check(self) -> None:
        """Raise ValueError when a field is out of its allowed set or shape."""
        if not ID_PATTERN.match(self.id):
            raise ValueError(f"defect id {self.id!r} is not a store id")
        self.bbox = _box(self.bbox, "bbox")
        if self.crop_box is not None:
            self.crop_box = _box(self.crop_box, "crop_box")
        if self.reject_state not in REJECT_STATES:
            raise ValueError(
                f"reject_state {self.reject_state!r} not in {REJECT_STATES}"
            )
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} not in {VERDICTS}")
        if not 0.0 <= float(self.score) <= 1e6 or self.area_px < 0:
            raise ValueError("score and area_px must be non-negative numbers")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["bbox"] = list(self.bbox)
        data["crop_box"] = list(self.crop_box) if self.crop_box else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DefectRecord:
        """Read a dict written by `to_dict`; unknown keys refused, fields checked."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown record keys {sorted(unknown)}")
        record = cls(**data)
        record.check()
        return record

    def file_paths(self) -> list[str]:
        """Every store-relative file this record refers to (JSON last)."""
        paths = [self.crop, self.overlay, self.map]
        if self.frame:
            paths.append(self.frame)
        paths.append(self.json)
        return [p for p in paths if p]
