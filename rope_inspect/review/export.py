"""Export QA verdicts as an MVTec-layout dataset that `rope-inspect train`/`eval` read.

    OUT/train/good/NNN.png            false alarms (8 of every 10)
    OUT/validation/good/NNN.png       false alarms (1 of every 10, at least one)
    OUT/test/good/NNN.png             false alarms (1 of every 10)
    OUT/test/<type>/NNN.png           confirmed defects ('defect': type not known)
    OUT/ground_truth/<type>/NNN_mask.png   the anomaly map above the pixel threshold
    OUT/export_manifest.json          which defect id each file came from

Every image is a `size` x `size` square around the defect at the camera's scale (no
resizing): cut from the stored crop, or from the full frame when the crop is too
small; where neither covers the square it is padded by reflection (counted). A mask
that comes out empty at the threshold falls back to the defect's box (counted). The
pixel threshold is the record's own, else the one given (`--calibration` or the
store's calibration meta).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rope_inspect.errors import DataError
from rope_inspect.log import get_logger
from rope_inspect.storage import DefectQuery, DefectRecord, StoreView
from rope_inspect.storage.files import encode_png, read_map16, read_rgb
from rope_inspect.storage.output_paths import check_output_folder

log = get_logger(__name__)
VERDICT_CHOICES: dict[str, tuple[str, ...]] = {
    "false-alarm": ("false_alarm",),
    "defect": ("defect",),
    "all": ("false_alarm", "defect"),
}


@dataclass
class ExportSummary:
    """How many images went where, and what needed a fallback."""

    out: str
    counts: dict[str, int] = field(default_factory=dict)
    padded: int = 0
    box_masks: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class Patch:
    image: np.ndarray
    amap: np.ndarray
    origin: tuple[int, int]  # frame (x, y) of the patch's top-left corner
    padded: bool


def _records(view: StoreView, verdict: str) -> list[DefectRecord]:
    found: list[DefectRecord] = []
    while True:
        query = DefectQuery(
            verdict=verdict,  # type: ignore[arg-type]
            sort="time",
            descending=False,
            offset=len(found),
            limit=500,
        )
        page = view.list_defects(query).items
        found += page
        if len(page) < query.limit:
            return found


def _sources(
    root: Path, record: DefectRecord
) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """(image, map, x0, y0) candidates: the crop, then the frame with the map pasted."""
    crop, amap = read_rgb(root / record.crop), read_map16(root / record.map)
    x0, y0 = (record.crop_box or (0, 0, 0, 0))[:2]
    sources = [(crop, amap, x0, y0)]
    if record.frame and record.crop_box:
        frame = read_rgb(root / record.frame)
        canvas = np.zeros(frame.shape[:2], np.float32)
        canvas[y0 : y0 + amap.shape[0], x0 : x0 + amap.shape[1]] = amap
        sources.append((frame, canvas, 0, 0))
    return sources


def square_patch(root: Path, record: DefectRecord, size: int) -> Patch:
    """The `size` square around the defect, from the best stored source."""
    sources = _sources(root, record)
    covering = [s for s in sources if min(s[0].shape[:2]) >= size]
    image, amap, sx, sy = (
        covering[0] if covering else max(sources, key=lambda s: min(s[0].shape[:2]))
    )
    bx0, by0, bx1, by1 = record.bbox
    if not record.crop_box:  # old record without crop box: centre of the crop
        bx0 = bx1 = sx + image.shape[1] // 2
        by0 = by1 = sy + image.shape[0] // 2
    h, w = image.shape[:2]
    x0 = int(np.clip((bx0 + bx1) // 2 - sx - size // 2, 0, max(w - size, 0)))
    y0 = int(np.clip((by0 + by1) // 2 - sy - size // 2, 0, max(h - size, 0)))
    cut = image[y0 : y0 + size, x0 : x0 + size]
    cut_map = amap[y0 : y0 + size, x0 : x0 + size]
    pad_y, pad_x = size - cut.shape[0], size - cut.shape[1]
    top, left = pad_y // 2, pad_x // 2
    if pad_y or pad_x:
        borders = (top, pad_y - top, left, pad_x - left)
        cut = cv2.copyMakeBorder(cut, *borders, cv2.BORDER_REFLECT_101)
        cut_map = cv2.copyMakeBorder(cut_map, *borders, cv2.BORDER_CONSTANT, value=0)
    return Patch(cut, cut_map, (sx + x0 - left, sy + y0 - top), bool(pad_y or pad_x))


def defect_mask(
    patch: Patch, record: DefectRecord, threshold: float
) -> tuple[np.ndarray, bool]:
    """(uint8 0/255 mask, whether the box fallback was used)."""
    mask = (patch.amap >= threshold).astype(np.uint8) * 255
    if mask.any():
        return mask, False
    x0, y0, x1, y1 = record.bbox
    ox, oy = patch.origin
    mask[max(y0 - oy, 0) : max(y1 - oy, 0), max(x0 - ox, 0) : max(x1 - ox, 0)] = 255
    return mask, True


def _type_folder(record: DefectRecord) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "_", (record.defect_type or "").lower()).strip("_")
    return name if name and name != "good" else "defect"


def _good_split(n: int, total: int) -> str:
    if n % 10 == 9 or (total >= 2 and n == total - 1 and total < 10):
        return "validation/good"
    return "test/good" if n % 10 == 4 else "train/good"


class _Writer:
    """Numbers the files of each folder and remembers where each defect went."""

    def __init__(self, out: Path, summary: ExportSummary) -> None:
        self.out, self.summary = out, summary
        self.manifest: list[dict[str, str]] = []

    def write(self, folder: str, image: np.ndarray, record: DefectRecord) -> str:
        n = self.summary.counts.get(folder, 0)
        self.summary.counts[folder] = n + 1
        path = self.out / folder / f"{n:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(image))
        self.manifest.append({"file": f"{folder}/{path.name}", "id": record.id})
        return path.stem


def _export_one(
    writer: _Writer, patch: Patch, record: DefectRecord, threshold: float | None
) -> None:
    """Write one confirmed defect to test/<type> with its ground-truth mask."""
    level = record.threshold if record.threshold is not None else threshold
    if level is None:
        raise DataError(
            f"defect {record.id} has no pixel threshold to make its mask",
            "pass --calibration calibration/<line>.yaml",
        )
    mask, boxed = defect_mask(patch, record, level)
    writer.summary.box_masks += boxed
    kind = _type_folder(record)
    stem = writer.write(f"test/{kind}", patch.image, record)
    mask_path = writer.out / "ground_truth" / kind / f"{stem}_mask.png"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.write_bytes(cv2.imencode(".png", mask)[1].tobytes())


def export_dataset(
    view: StoreView,
    out: Path,
    verdict: str,
    size: int = 256,
    threshold: float | None = None,
) -> ExportSummary:
    """Write the store's verdicts as an MVTec-layout folder at `out` (new or empty)."""
    if verdict not in VERDICT_CHOICES:
        raise DataError(
            f"unknown verdict {verdict!r}", f"use one of {sorted(VERDICT_CHOICES)}"
        )
    if out.exists() and out.is_dir() and any(out.iterdir()):
        raise DataError(
            f"export folder {out} is not empty", "give a new or empty folder"
        )
    check_output_folder(out, "--out")
    summary = ExportSummary(out=str(out))
    writer = _Writer(out, summary)
    for wanted in VERDICT_CHOICES[verdict]:
        records = _records(view, wanted)
        for n, record in enumerate(records):
            try:
                patch = square_patch(view.root, record, size)
            except (OSError, ValueError) as exc:
                summary.skipped.append(record.id)
                log.warning("export_skipped", id=record.id, error=str(exc))
                continue
            summary.padded += patch.padded
            if wanted == "false_alarm":
                writer.write(_good_split(n, len(records)), patch.image, record)
            else:
                _export_one(writer, patch, record, threshold)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"size": size, "verdict": verdict, "files": writer.manifest}
    (out / "export_manifest.json").write_text(json.dumps(manifest, indent=1))
    log.info(
        "export_written",
        out=str(out),
        counts=summary.counts,
        padded=summary.padded,
        box_masks=summary.box_masks,
        skipped=len(summary.skipped),
    )
    return summary
