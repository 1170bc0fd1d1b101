"""Rope position from a constant line speed, for the reject scheduler.

The scheduler asks "which rope coordinate is under the camera centre now"; without
an encoder that is the line speed times the time since the origin.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LinearRopePosition:
    """Rope coordinate from a constant line speed: speed * (clock() - origin)."""

    def __init__(
        self, speed_m_per_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.speed_m_per_s = speed_m_per_s
        self._clock = clock
        self.origin_s = clock()

    def at(self, monotonic_s: float) -> float:
        """The coordinate that was under the camera centre at a clock time."""
        return self.speed_m_per_s * (monotonic_s - self.origin_s)

    def __call__(self) -> float:
        return self.at(self._clock())
