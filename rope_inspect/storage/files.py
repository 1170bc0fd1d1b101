"""Defect files on disk: atomic writes, image encodings, crops and heat-map overlays.

Every file of the defect store is written to a temp name in its final folder, fsynced
and renamed, so a file either exists whole or not at all. Temp names start with
`TEMP_PREFIX`; `recover()` removes any it finds. Images are RGB uint8 in memory; the
anomaly-map crop is kept as a 16-bit PNG (value / 65535) so exports can threshold it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from rope_inspect.storage.record import DefectRecord
    from rope_inspect.storage.writer import PendingDefect

TEMP_PREFIX = ".tmp-"
MAP_SCALE = 65535.0


def write_atomic(path: Path, data: bytes, sync: bool = True) -> None:
    """Write `data` to `path` via temp file + fsync + rename (the folder is created).

    `sync=False` skips the fsync: the rename still survives a killed process (the page
    cache outlives it), only a power loss may take it back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(ext: str, image: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {ext}")
    return buf.tobytes()


def _to_bgr(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"expected an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}"
        )
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def encode_png(rgb: np.ndarray) -> bytes:
    return _encode(".png", _to_bgr(rgb), [cv2.IMWRITE_PNG_COMPRESSION, 3])


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    return _encode(".jpg", _to_bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def encode_map16(anomaly_map: np.ndarray) -> bytes:
    """An anomaly map in [0, 1] (H x W or H x W x 1) as a 16-bit grey PNG."""
    values = np.asarray(anomaly_map, dtype=np.float32).squeeze()
    if values.ndim != 2:
        raise ValueError(
            f"expected an H x W anomaly map, got shape {anomaly_map.shape}"
        )
    scaled = np.clip(np.nan_to_num(values), 0.0, 1.0) * MAP_SCALE
    return _encode(
        ".png", np.rint(scaled).astype(np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 3]
    )


def read_rgb(path: Path) -> np.ndarray:
    """Read a stored PNG/JPEG as RGB uint8; ValueError when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_map16(path: Path) -> np.ndarray:
    """Read a map written by `encode_map16` back as float32 in [0, 1]."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit anomaly map PNG")
    return image.astype(np.float32) / MAP_SCALE


def make_overlay(
    crop_rgb: np.ndarray, map_crop: np.ndarray, threshold: float | None = None
) -> np.ndarray:
    """The heat-map overlay: a colour map of the anomaly map blended over the crop.

    The blend weight grows with the map value (absolute scale, 0..1), so normal rope
    keeps its colours and scores are comparable between defects; pixels at or above
    `threshold` get a white outline.
    """
    values = np.clip(np.nan_to_num(np.asarray(map_crop, np.float32).squeeze()), 0, 1)
    if values.shape != crop_rgb.shape[:2]:
        raise ValueError(
            f"map crop {values.shape} does not match crop {crop_rgb.shape[:2]}"
        )
    heat_bgr = cv2.applyColorMap((values * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    alpha = (0.6 * np.sqrt(values))[..., None]
    blended = crop_rgb.astype(np.float32) * (1 - alpha) + heat * alpha
    overlay = np.clip(blended, 0, 255).astype(np.uint8)
    if threshold is not None:
        region = (values >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(
            region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(overlay, contours, -1, (255, 255, 255), 1)
    return overlay


def defect_payload(
    record: DefectRecord, item: PendingDefect, folder: str, jpeg_quality: int
) -> list[tuple[str, bytes]]:
    """(store-relative path, bytes) of every file of a defect, the JSON last; fills
    in the record's paths (and its frame size when the frame is kept)."""
    base = f"{folder}/{record.id}"
    record.crop, record.overlay = f"{base}.crop.png", f"{base}.overlay.png"
    record.map, record.json = f"{base}.map.png", f"{base}.json"
    overlay = make_overlay(item.crop, item.map_crop, record.threshold)
    payload = [
        (record.crop, encode_png(item.crop)),
        (record.overlay, encode_png(overlay)),
        (record.map, encode_map16(item.map_crop)),
    ]
    if item.frame is not None:
        record.frame = f"{base}.frame.jpg"
        height, width = item.frame.shape[:2]
        record.extra = {**record.extra, "frame_size": [width, height]}
        payload.append((record.frame, encode_jpeg(item.frame, jpeg_quality)))
    payload.append((record.json, json.dumps(record.to_dict(), indent=1).encode()))
    return payload


def crop_box_around(
    bbox: tuple[int, int, int, int],
    frame_hw: tuple[int, int],
    margin: int,
    min_side: int,
) -> tuple[int, int, int, int]:
    """A box around `bbox` widened by `margin`, at least `min_side` square where the
    frame allows, shifted (not shrunk) to stay inside the frame."""
    height, width = frame_hw
    x0, y0, x1, y1 = bbox
    boxes = []
    for lo, hi, size in ((x0, x1, width), (y0, y1, height)):
        side = min(max(hi - lo + 2 * margin, min_side), size)
        start = (lo + hi) // 2 - side // 2
        start = min(max(start, 0), size - side)
        boxes.append((start, start + side))
    (cx0, cx1), (cy0, cy1) = boxes
    return (cx0, cy0, cx1, cy1)


def crop_around(
    frame: np.ndarray,
    anomaly_map: np.ndarray,
    bbox: tuple[int, int, int, int],
    margin: int = 32,
    min_side: int = 256,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Cut the defect crop and its anomaly-map crop from a frame (copies).

    Returns `(crop_rgb, map_crop, crop_box)`; pass `crop_box` on the record so the
    review and the export know where the defect lies inside the crop.
    """
    box = crop_box_around(bbox, frame.shape[:2], margin, min_side)
    x0, y0, x1, y1 = box
    values = np.asarray(anomaly_map).squeeze()
    return frame[y0:y1, x0:x1].copy(), values[y0:y1, x0:x1].astype(np.float32), box
