"""The image-quality check that runs before inference.

A lighting failure (all black), an overexposed or blinded camera (saturated), a frozen
uniform image or a frame of the wrong size would give the model a picture it was never
trained on, and its anomaly map would be nonsense: false defects and false rejects.
Such frames are counted and skipped, and an image-quality alarm is raised instead.

The check reads a strided subsample of the frame (1/16 of the pixels by default) into
buffers allocated once, so it costs far less than the tile copy it guards and
allocates nothing per frame (the hot path principle of DESIGN.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# A frame is black when even its brightest pixels (99th percentile) stay this dark.
BLACK_P99 = 20
# A pixel is saturated at this level in every channel; a frame when this share is.
SATURATED_LEVEL = 250
SATURATED_FRACTION = 0.5
# A frame whose grey levels vary less than this (standard deviation) is flat.
FLAT_STD = 1.0


@dataclass(frozen=True)
class QualityLimits:
    """Where a frame stops being inspectable."""

    black_p99: float = BLACK_P99
    saturated_level: int = SATURATED_LEVEL
    saturated_fraction: float = SATURATED_FRACTION
    flat_std: float = FLAT_STD
    stride: int = 4


class ImageQualityCheck:
    """`check(image)` -> None for an inspectable frame, else the reason it is not.

    Black: fewer than 1 % of the sampled pixels reach `black_p99` (the 99th
    percentile of the grey level is below it, up to interpolation between two
    pixels). Grey is the mean of the three channels, kept as their sum.
    """

    REASONS = ("wrong_size", "black", "saturated", "flat")

    def __init__(
        self, expected_shape: tuple[int, ...], limits: QualityLimits | None = None
    ) -> None:
        self.expected_shape = tuple(expected_shape)
        self.limits = limits or QualityLimits()
        step = self.limits.stride
        rows = math.ceil(self.expected_shape[0] / step)
        columns = math.ceil(self.expected_shape[1] / step)
        self._sample = np.empty((rows, columns, 3), np.uint16)
        self._sum = np.empty((rows, columns), np.uint16)  # 3 x grey
        self._over = np.empty((rows, columns, 3), bool)
        self._flags = np.empty((rows, columns), bool)
        count = rows * columns
        # black when fewer pixels than this reach the level (99th percentile rank)
        self._black_count = count - math.ceil(0.99 * (count - 1))

    def check(self, image: np.ndarray) -> str | None:
        if image.shape != self.expected_shape or image.dtype != np.uint8:
            return "wrong_size"
        limits = self.limits
        sample, total, flags = self._sample, self._sum, self._flags
        np.copyto(sample, image[:: limits.stride, :: limits.stride])

        np.greater_equal(sample, limits.saturated_level, out=self._over)
        np.logical_and.reduce(self._over, axis=-1, out=flags)
        if np.count_nonzero(flags) >= limits.saturated_fraction * flags.size:
            return "saturated"

        np.add(sample[..., 0], sample[..., 1], out=total)
        np.add(total, sample[..., 2], out=total)
        np.greater_equal(total, 3 * limits.black_p99, out=flags)
        if np.count_nonzero(flags) < self._black_count:
            return "black"
        if float(cv2.meanStdDev(total)[1][0, 0]) < 3 * limits.flat_std:
            return "flat"
        return None
