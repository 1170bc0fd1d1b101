"""Where along the rope a frame and a defect are, in metres.

A rope coordinate belongs to the material: it is the length of rope that had passed the
camera's image centre when that bit of rope was there, so it grows as the line runs.
`RopePosition` gives each frame the coordinate at its image centre, from the line speed
and the frame's monotonic timestamp, or from an encoder count (camera chunk data or a
PLC register; 32-bit counters that wrap are unwrapped). `RopeGeometry` maps a pixel of
the frame to a coordinate: with the rope moving towards x = 0, rope to the right of the
centre arrives later and so has a larger coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

from rope_inspect.config import LineConfig
from rope_inspect.log import get_logger

log = get_logger(__name__)

COUNTER_MODULUS = 1 << 32
SPEED_SMOOTHING = 0.2  # weight of the newest speed measurement


@dataclass(frozen=True, slots=True)
class RopeGeometry:
    """Pixels of a frame to rope coordinates."""

    axis: str  # horizontal | vertical
    sign: float  # +1: coordinate grows with x (or y); rope moves towards 0
    m_per_px: float
    length_px: int  # frame size along the rope

    @classmethod
    def from_config(
        cls, line_cfg: LineConfig, mm_per_px: float, frame_shape: tuple[int, ...]
    ) -> RopeGeometry:
        horizontal = line_cfg.rope_axis == "horizontal"
        return cls(
            axis=line_cfg.rope_axis,
            sign=1.0 if line_cfg.image_travel == "negative" else -1.0,
            m_per_px=mm_per_px / 1000.0,
            length_px=int(frame_shape[1] if horizontal else frame_shape[0]),
        )

    def along(self, x: float, y: float) -> float:
        """The pixel coordinate along the rope axis."""
        return x if self.axis == "horizontal" else y

    def coordinate(self, frame_position_m: float, along_px: float) -> float:
        """Rope coordinate (m) of the point `along_px` along the axis of a frame."""
        offset = along_px - self.length_px / 2
        return frame_position_m + self.sign * offset * self.m_per_px

    def span(
        self, frame_position_m: float, start_px: float, stop_px: float
    ) -> tuple[float, float]:
        """Rope interval (low, high) of pixels [start_px, stop_px) along the axis."""
        a = self.coordinate(frame_position_m, start_px)
        b = self.coordinate(frame_position_m, stop_px)
        return (a, b) if a <= b else (b, a)

    def view(self, frame_position_m: float) -> tuple[float, float]:
        """The rope interval the whole frame shows."""
        return self.span(frame_position_m, 0, self.length_px)


class RopePosition:
    """The rope coordinate of each frame's image centre (see the module docstring).

    `at(timestamp_ns, encoder_count)`: with `line.encoder: none` the position is the
    configured speed times the time since the first frame; otherwise it is the
    encoder's counts since the first frame over `encoder_counts_per_m`. A frame that
    lacks its count (a chunk not delivered) is placed by the last count plus the
    speed measured from the counts (smoothed), and counted in `missing_counts`.
    """

    def __init__(self, line_cfg: LineConfig) -> None:
        self.use_encoder = line_cfg.encoder != "none"
        self.speed_m_per_s = line_cfg.speed_m_per_s
        self.counts_per_m = line_cfg.encoder_counts_per_m
        self.missing_counts = 0
        self._t0: int | None = None
        self._unwrapped = 0  # counts since the first frame
        self._last_raw: int | None = None
        self._last_t = 0
        self._last_position = 0.0

    def at(self, timestamp_ns: int, encoder_count: int | None = None) -> float:
        """Rope position (m) at the image centre of a frame taken at `timestamp_ns`."""
        if self._t0 is None:
            self._t0 = timestamp_ns
            self._last_t = timestamp_ns
        if not self.use_encoder:
            return (timestamp_ns - self._t0) * 1e-9 * self.speed_m_per_s
        if encoder_count is None:
            return self._extrapolate(timestamp_ns)
        return self._from_count(timestamp_ns, int(encoder_count))

    def _from_count(self, timestamp_ns: int, raw: int) -> float:
        if self._last_raw is None:
            self._last_raw = raw
        delta = (raw - self._last_raw) % COUNTER_MODULUS
        if delta >= COUNTER_MODULUS // 2:
            delta -= COUNTER_MODULUS  # the rope ran backwards a little
        self._last_raw = raw
        self._unwrapped += delta
        position = self._unwrapped / self.counts_per_m
        elapsed = (timestamp_ns - self._last_t) * 1e-9
        if elapsed > 0:
            measured = abs(position - self._last_position) / elapsed
            self.speed_m_per_s += SPEED_SMOOTHING * (measured - self.speed_m_per_s)
        self._last_t, self._last_position = timestamp_ns, position
        return position

    def _extrapolate(self, timestamp_ns: int) -> float:
        self.missing_counts += 1
        if self.missing_counts == 1:
            log.warning("encoder_count_missing", note="placing frames by speed")
        elapsed = (timestamp_ns - self._last_t) * 1e-9
        return self._last_position + elapsed * self.speed_m_per_s
