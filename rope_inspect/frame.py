"""The Frame contract between acquisition and inspection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    """One acquired image.

    `image` is H x W x 3 uint8 RGB. When the frame comes from the ring it is a view into
    a ring slot and is valid only until the slot is released.
    """

    index: int
    timestamp_ns: int
    camera_frame_id: int
    image: np.ndarray
    position_m: float | None = None
