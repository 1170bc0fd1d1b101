"""The Frame contract between acquisition and inspection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rope_inspect.acquisition.base import TruthDefect


@dataclass(slots=True)
class Frame:
    """One acquired image.

    `image` is H x W x 3 uint8 RGB. When the frame comes from the ring it is a view into
    a ring slot and is valid only until the slot is released. `source_name` is the
    file a replayed frame came from; `truth` holds the synthetic line's ground truth.
    """

    index: int
    timestamp_ns: int
    camera_frame_id: int
    image: np.ndarray
    position_m: float | None = None
    encoder_count: int | None = None
    source_name: str | None = None
    truth: tuple[TruthDefect, ...] = ()
