"""Scoring a replayed MVTec-layout folder against its ground-truth masks.

`MaskScorer` matches stored defects of a replayed folder against the ground-truth
masks by file path (test/<type>/NNN.png -> ground_truth/<type>/NNN_mask.png): defects
found and missed, and false alarms on good frames. Only frames that were inspected
count.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rope_inspect.frame import Frame
from rope_inspect.service.groundtruth import FoundDefect, mask_path_for

# A replayed frame is scored once this many newer frames were inspected: the decision
# has emitted every defect of it by then (defects close within a few inspected frames).
SETTLE_FRAMES = 64
# Uninspected images named in the report (the rest are counted).
NAMED_UNINSPECTED = 100


class MaskScorer:
    """Found / missed defects and false alarms of a replayed MVTec-layout folder.

    Each inspected frame is scored against its mask once `SETTLE_FRAMES` newer frames
    were seen (or at the report) and then kept only as counts, so a looping replay
    runs flat; every pass over a photograph counts as one more image.
    """

    def __init__(self, replay_root: Path) -> None:
        self.replay_root = replay_root
        self.frames: dict[int, Path] = {}  # inspected, not yet scored
        self.by_frame: dict[int, list[FoundDefect]] = defaultdict(list)
        self.uninspected: list[str] = []
        self.uninspected_count = 0
        self._counts = _MaskCounts()

    def observe(self, frame: Frame, inspected: bool) -> None:
        if frame.source_name is None:
            return
        path = Path(frame.source_name)
        if not path.is_absolute() and not path.exists():
            path = self.replay_root / path
        if not inspected:
            self.uninspected_count += 1
            if len(self.uninspected) < NAMED_UNINSPECTED:
                self.uninspected.append(str(path))
            return  # only inspected frames move the decision (and its defects) on
        self.frames[frame.index] = path  # dicts keep insertion order: oldest first
        while len(self.frames) > SETTLE_FRAMES:
            index = next(iter(self.frames))
            self._counts.add(self.frames.pop(index), self.by_frame.pop(index, []))

    def add(self, found: FoundDefect) -> None:
        self.by_frame[found.frame_index].append(found)

    def report(self) -> dict[str, Any]:
        counts = self._counts.copy()
        for index, image in sorted(self.frames.items()):
            counts.add(image, self.by_frame.get(index, []))
        return counts.report(self.uninspected, self.uninspected_count)


class _MaskCounts:
    """What the scored frames of a mask replay added up to."""

    def __init__(self) -> None:
        self.per_type: dict[str, dict[str, int]] = defaultdict(_image_row)
        self.good = {"images": 0, "with_false_alarm": 0, "false_alarms": 0}
        self.off_mask = 0
        self.images = 0

    def copy(self) -> _MaskCounts:
        other = _MaskCounts()
        other.per_type.update({k: dict(v) for k, v in self.per_type.items()})
        other.good = dict(self.good)
        other.off_mask, other.images = self.off_mask, self.images
        return other

    def add(self, image: Path, defects: list[FoundDefect]) -> None:
        self.images += 1
        mask_file = mask_path_for(image)
        if mask_file is None:
            self.good["images"] += 1
            self.good["false_alarms"] += len(defects)
            self.good["with_false_alarm"] += bool(defects)
            return
        hits = _overlaps(mask_file, defects)
        row = self.per_type[image.parent.name]
        row["images"] += 1
        row["found" if any(hits) else "missed"] += 1
        self.off_mask += hits.count(False)

    def report(self, uninspected: list[str], uninspected_count: int) -> dict[str, Any]:
        found = sum(r["found"] for r in self.per_type.values())
        missed = sum(r["missed"] for r in self.per_type.values())
        return {
            "kind": "masks",
            "images_inspected": self.images,
            "images_not_inspected": uninspected,
            "images_not_inspected_count": uninspected_count,
            "defects_found": found,
            "defects_missed": missed,
            "per_type": dict(sorted(self.per_type.items())),
            "good_images": self.good["images"],
            "good_images_with_false_alarm": self.good["with_false_alarm"],
            "false_alarms_on_good": self.good["false_alarms"],
            "false_alarms_off_mask_on_defective": self.off_mask,
        }


def _image_row() -> dict[str, int]:
    return {"images": 0, "found": 0, "missed": 0}


def _overlaps(mask_file: Path, defects: list[FoundDefect]) -> list[bool]:
    mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"ground-truth mask {mask_file} is missing")
    hits = []
    for d in defects:
        x0, y0, x1, y1 = d.bbox
        hits.append(bool(np.any(mask[y0:y1, x0:x1] > 0)))
    return hits
