"""The image-quality check that runs before inference.

A lighting failure (all black), an overexposed or blinded camera (saturated), a frozen
uniform image or a frame of the wrong size would give the model a picture it was never
trained on, and its anomaly map would be nonsense: false defects and false rejects.
Such frames are counted and skipped, and an image-quality alarm is raised instead.

The check reads a strided subsample of the frame (1/16 of the pixels by default), so it
costs far less than the tile copy it guards.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """`check(image)` -> None for an inspectable frame, else the reason it is not."""

    REASONS = ("wrong_size", "black", "saturated", "flat")

    def __init__(
        self, expected_shape: tuple[int, ...], limits: QualityLimits | None = None
    ) -> None:
        self.expected_shape = tuple(expected_shape)
        self.limits = limits or QualityLimits()

    def check(self, image: np.ndarray) -> str | None:
        if image.shape != self.expected_shape or image.dtype != np.uint8:
            return "wrong_size"
        step = self.limits.stride
        sample = image[::step, ::step]
        saturated = np.all(sample >= self.limits.saturated_level, axis=-1)
        if saturated.mean() >= self.limits.saturated_fraction:
            return "saturated"
        grey = sample.mean(axis=-1, dtype=np.float32)
        if np.percentile(grey, 99) < self.limits.black_p99:
            return "black"
        if float(grey.std()) < self.limits.flat_std:
            return "flat"
        return None
