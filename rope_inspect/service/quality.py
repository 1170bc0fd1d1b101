"""The image-quality check that runs before inference.

A lighting failure (all black), an overexposed or blinded camera (saturated), a frozen
uniform image or a frame of the wrong size would give the model a picture it was never
trained on, and its anomaly map would be nonsense: false defects and false rejects.
Such frames are counted and skipped, and an image-quality alarm is raised instead.

The check reads a strided subsample of the frame (1/16 of the pixels by default) into
buffers allocated once, so it costs far less than the tile copy it guards and, once
each ring slot has been seen, allocates nothing per frame (the hot path principle of
DESIGN.md): the strided view of a slot is made once (`ViewCache`), every operand is
an array of the right type (a Python number is converted on each call) and channels
are combined as contiguous planes (numpy builds an iterator for strided operands or a
reduction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rope_inspect.vision.frame_views import ViewCache

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
        self.limits = limits = limits or QualityLimits()
        step = limits.stride
        rows = math.ceil(self.expected_shape[0] / step)
        columns = math.ceil(self.expected_shape[1] / step)
        # channel planes: numpy combines strided channel views through a buffer
        self._views = ViewCache(lambda image: image[::step, ::step].transpose(2, 0, 1))
        self._planes = np.empty((3, rows, columns), np.uint16)
        self._channels = tuple(self._planes)
        self._sum = np.empty((rows, columns), np.uint16)  # 3 x grey; also the minimum
        self._flags = np.empty((rows, columns), bool)
        self._flag_bytes = self._flags.view(np.uint8)  # counted by OpenCV: an int
        self._mean, self._std = np.empty((1, 1)), np.empty((1, 1))
        count = rows * columns
        # levels the uint16 sample is compared with (integers: >= x iff >= ceil(x))
        self._saturated_level = np.array(limits.saturated_level, np.uint16)
        black = min(math.ceil(3 * limits.black_p99), 65535)
        self._black_level = np.array(black, np.uint16)
        self._saturated_count = limits.saturated_fraction * count
        self._flat_std = 3 * limits.flat_std
        # black when fewer pixels than this reach the level (99th percentile rank)
        self._black_count = count - math.ceil(0.99 * (count - 1))

    def check(self, image: np.ndarray) -> str | None:
        if image.dtype != np.uint8 or image.shape != self.expected_shape:
            return "wrong_size"
        total, flags = self._sum, self._flags
        red, green, blue = self._channels
        np.copyto(self._planes, self._views.get(image))

        # saturated: the least of the three channels reaches the level
        np.minimum(red, green, out=total)
        np.minimum(total, blue, out=total)
        np.greater_equal(total, self._saturated_level, out=flags)
        if cv2.countNonZero(self._flag_bytes) >= self._saturated_count:
            return "saturated"

        np.add(red, green, out=total)
        np.add(total, blue, out=total)
        np.greater_equal(total, self._black_level, out=flags)
        if cv2.countNonZero(self._flag_bytes) < self._black_count:
            return "black"
        cv2.meanStdDev(total, self._mean, self._std)
        if self._std.item(0) < self._flat_std:
            return "flat"
        return None
