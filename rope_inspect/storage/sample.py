"""Synthetic defects for a sample store: a drawn rope frame with one marked flaw each.

Used by the tests of the store and the review page, and to try the review page
without a line (`write_sample_store`). The pictures are procedural (a three-strand
lay over dark foam, a dark or bright blob as the flaw); no photographs are involved.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rope_inspect.storage.files import crop_around
from rope_inspect.storage.record import DefectRecord

SAMPLE_TYPES = ("contamination", "cut", "open")


def rope_frame(
    rng: np.random.Generator, height: int = 224, width: int = 640
) -> np.ndarray:
    """A horizontal three-strand rope on a dark background, RGB uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    centre, radius = height / 2 + rng.uniform(-6, 6), height * 0.3
    inside = np.abs(yy - centre) < radius
    lay = np.sin((xx + (yy - centre) * 0.9) * (2 * np.pi / 46.0) + rng.uniform(0, 6.3))
    shade = 0.55 + 0.3 * lay + 0.15 * np.cos((yy - centre) / radius * np.pi / 2)
    noise = rng.normal(0, 0.05, (height, width)).astype(np.float32)
    fibres = cv2.GaussianBlur(noise, (0, 0), sigmaX=3.0, sigmaY=0.6)
    tone = np.clip(shade + fibres, 0, 1)[..., None] * np.array([222, 204, 168])
    background = rng.normal(32, 4, (height, width, 1)) * np.array([1.0, 1.0, 1.1])
    image = np.where(inside[..., None], tone, background)
    return np.clip(image, 0, 255).astype(np.uint8)


def sample_defect(
    rng: np.random.Generator,
    epoch: float,
    position_m: float,
    line: str = "demo",
    frame_index: int = 0,
) -> tuple[DefectRecord, np.ndarray, np.ndarray, np.ndarray]:
    """(record, crop, map crop, frame) of one drawn flaw at a random place."""
    frame = rope_frame(rng)
    height, width = frame.shape[:2]
    cx, cy = int(rng.uniform(80, width - 80)), int(height / 2 + rng.uniform(-40, 40))
    rx, ry = int(rng.uniform(6, 18)), int(rng.uniform(4, 12))
    flaw = np.zeros((height, width), np.uint8)
    cv2.ellipse(flaw, (cx, cy), (rx, ry), rng.uniform(0, 180), 0, 360, 255, -1)
    colour = (40, 30, 25) if rng.random() < 0.6 else (250, 250, 240)
    frame[flaw > 0] = colour
    blurred = cv2.GaussianBlur(flaw.astype(np.float32) / 255, (0, 0), 4.0)
    amap = blurred / max(float(blurred.max()), 1e-6) * rng.uniform(0.55, 0.98)
    ys, xs = np.nonzero(amap >= 0.5 * amap.max())
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    crop, map_crop, crop_box = crop_around(frame, amap, bbox, margin=32, min_side=160)
    area_px = len(xs)
    record = DefectRecord.create(
        line=line,
        position_m=round(position_m, 3),
        frame_index=frame_index,
        bbox=bbox,
        area_px=area_px,
        area_mm2=round(area_px * 0.0144, 3),
        score=round(float(amap.max()), 4),
        epoch=epoch,
        threshold=0.5,
        defect_type=str(rng.choice(SAMPLE_TYPES)),
        crop_box=crop_box,
    )
    return record, crop, map_crop, frame


def write_sample_store(
    path: Path, count: int = 40, seed: int = 0, start_epoch: float = 1.7e9
) -> list[str]:
    """Fill a store folder with `count` drawn defects over a few hours; their ids."""
    from rope_inspect.config import StoreConfig
    from rope_inspect.storage.store import DefectStore

    rng = np.random.default_rng(seed)
    store = DefectStore(StoreConfig.model_validate({"path": path}))
    store.set_meta("calibration", {"pixel_threshold": 0.5, "source": "sample"})
    ids = []
    for n in range(count):
        epoch = start_epoch + n * rng.uniform(60, 900)
        line = "line-a" if n % 3 else "line-b"
        item = sample_defect(rng, epoch, 3.0 + n * rng.uniform(2, 9), line, n * 40)
        store.add(*item)
        ids.append(item[0].id)
    store.close(timeout_s=60.0)
    return ids
