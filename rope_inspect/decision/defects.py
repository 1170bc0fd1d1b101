"""From a frame's anomaly map to connected defects with their size in pixels and mm^2.

The stitched map is smoothed (optional Gaussian), the frame score is the smoothed map's
maximum inside the rope envelope, and only when that reaches the calibrated pixel
threshold are connected regions labelled (OpenCV, 8-connected); regions smaller than
`min_area_px` are dropped. Good frames, the vast majority, cost one blur and one
masked maximum, in buffers reused from frame to frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rope_inspect.config import DecisionConfig
from rope_inspect.decision.calibration import Calibration

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Blob:
    """One connected defect region in one frame.

    `bbox` is (x0, y0, x1, y1) in frame pixels, x1/y1 exclusive (the store's
    convention); `score` is the peak of the smoothed anomaly map inside the region.
    """

    bbox: Box
    area_px: int
    area_mm2: float
    score: float
    centroid: tuple[float, float]  # x, y in frame pixels


@dataclass(frozen=True, slots=True)
class FrameDefects:
    """What one frame's anomaly map says: its score and its defect regions."""

    score: float
    blobs: tuple[Blob, ...]
    over_image_threshold: bool


class DefectFinder:
    """`find_defects` with its buffers kept between frames (one per inspector)."""

    def __init__(self, calibration: Calibration, decision_cfg: DecisionConfig) -> None:
        self.threshold = calibration.pixel_threshold
        self.image_threshold = calibration.image_threshold
        self.mm2_per_px = calibration.mm_per_px**2
        self.cfg = decision_cfg
        self._smoothed = np.zeros((0, 0), np.float32)
        self._above = np.zeros((0, 0), bool)
        self._labels = np.zeros((0, 0), np.int32)
        self._envelope: np.ndarray | None = None
        self._envelope_u8 = np.zeros((0, 0), np.uint8)
        self._roi: tuple[slice, slice] = (slice(0, 0), slice(0, 0))
        sigma = decision_cfg.smoothing_sigma_px
        self._radius = math.ceil(3 * sigma) if sigma > 0 else 0  # kernel +-3 sigma

    def _buffers(self, anomaly_map: np.ndarray, envelope: np.ndarray) -> None:
        if self._smoothed.shape != anomaly_map.shape:
            self._smoothed = np.zeros(anomaly_map.shape, np.float32)
            self._above = np.zeros(anomaly_map.shape, bool)
            self._labels = np.zeros(anomaly_map.shape, np.int32)
        if envelope is not self._envelope:
            self._envelope_u8 = envelope.astype(np.uint8)
            self._envelope = envelope
            self._roi = self._smoothing_roi(envelope)
            self._smoothed.fill(0.0)

    def _smoothing_roi(self, envelope: np.ndarray) -> tuple[slice, slice]:
        """The envelope's bounding box widened by the kernel radius: smoothing there
        gives, inside the envelope, what smoothing the whole map would give."""
        rows, cols = (
            np.flatnonzero(envelope.any(axis=1)),
            np.flatnonzero(envelope.any(0)),
        )
        if rows.size == 0:
            return (slice(0, 0), slice(0, 0))
        pad, (height, width) = self._radius, envelope.shape
        return (
            slice(max(0, rows[0] - pad), min(height, rows[-1] + 1 + pad)),
            slice(max(0, cols[0] - pad), min(width, cols[-1] + 1 + pad)),
        )

    def _smooth(self, anomaly_map: np.ndarray) -> np.ndarray:
        """Gaussian of the map over the envelope's box (0 elsewhere: never read)."""
        if self._radius == 0:
            return anomaly_map
        roi, size = self._roi, 2 * self._radius + 1
        if roi[0].stop > roi[0].start:
            cv2.GaussianBlur(
                anomaly_map[roi], (size, size), self.cfg.smoothing_sigma_px,
                dst=self._smoothed[roi], borderType=cv2.BORDER_REPLICATE,
            )  # fmt: skip
        return self._smoothed

    def find(self, anomaly_map: np.ndarray, envelope: np.ndarray) -> FrameDefects:
        """Defects of the float32 H x W `anomaly_map` inside the bool `envelope`."""
        if anomaly_map.shape != envelope.shape:
            raise ValueError(f"map {anomaly_map.shape} and envelope {envelope.shape}")
        self._buffers(anomaly_map, envelope)
        smoothed = self._smooth(np.asarray(anomaly_map, np.float32))
        score = float(cv2.minMaxLoc(smoothed, mask=self._envelope_u8)[1])
        over = score >= self.image_threshold
        if score < self.threshold:
            return FrameDefects(score, (), over)

        above = self._above
        np.greater_equal(smoothed, self.threshold, out=above)
        np.logical_and(above, envelope, out=above)
        return FrameDefects(score, self._blobs(smoothed, above.view(np.uint8)), over)

    def _blobs(self, smoothed: np.ndarray, binary: np.ndarray) -> tuple[Blob, ...]:
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(
            binary, labels=self._labels, connectivity=8, ltype=cv2.CV_32S
        )
        blobs = []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < self.cfg.min_area_px:
                continue
            inside = labels[y : y + h, x : x + w] == label
            peak = float(smoothed[y : y + h, x : x + w][inside].max())
            cx, cy = (float(v) for v in centroids[label])
            blobs.append(
                Blob(
                    bbox=(x, y, x + w, y + h),
                    area_px=area,
                    area_mm2=area * self.mm2_per_px,
                    score=peak,
                    centroid=(cx, cy),
                )
            )
        blobs.sort(key=lambda blob: blob.score, reverse=True)
        return tuple(blobs)


def find_defects(
    anomaly_map: np.ndarray,
    envelope: np.ndarray,
    calibration: Calibration,
    decision_cfg: DecisionConfig,
) -> FrameDefects:
    """One-off `DefectFinder(...).find(...)`; the daemon keeps a `DefectFinder`."""
    return DefectFinder(calibration, decision_cfg).find(anomaly_map, envelope)
