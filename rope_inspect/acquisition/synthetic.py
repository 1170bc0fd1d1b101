"""The synthetic rope line: the demo camera, with end-to-end ground truth.

An endless procedurally rendered three-strand rope (`rope_render.py`) with seeded
defects (`rope_defects.py`) runs past a virtual camera at the line speed. Rope is
rendered in strips of SEGMENT_M metres (plus one frame width of overlap) on a helper
thread, one strip ahead; each frame is a window slid along the current strip and
copied into the ring slot with a little sensor noise (the one copy per frame).

Geometry: the rope travels toward -x (right to left; line.image_travel: negative).
`position_m` of a frame is the rope coordinate under the image centre column; a pixel
in column x shows rope coordinate position_m + (x - width / 2) / px_per_m. A defect
is under the camera centre when a frame's position_m equals its TruthDefect.position_m.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rope_inspect.acquisition.base import FrameInfo, FramePacer, TruthDefect
from rope_inspect.acquisition.rope_defects import (
    DEFECT_KINDS,
    EXTENT_MM,
    DefectMask,
    DefectSpec,
    defects_in_metre,
    paint_defects,
    thickness_profile,
)
from rope_inspect.acquisition.rope_render import RopeLook, RopeRenderer
from rope_inspect.errors import ConfigError
from rope_inspect.log import get_logger

if TYPE_CHECKING:
    from rope_inspect.config import LineConfig, SyntheticSourceConfig

log = get_logger(__name__)

SEGMENT_M = 0.25
_NOISE_PLANES = 4
_NOISE_SHIFT = 17
# Sensor noise added to every frame: uniform integers in [0, SENSOR_NOISE_LEVELS).
# The still dataset (synthetic_dataset.py) adds the same, so the demo model is trained
# on what the demo camera delivers.
SENSOR_NOISE_LEVELS = 6


@dataclass
class RenderedSpan:
    """A rendered stretch of rope from absolute column x0, with its defect masks."""

    x0: int
    image: np.ndarray
    masks: list[DefectMask]

    def truth(self, x0: int, width: int, px_per_m: float) -> tuple[TruthDefect, ...]:
        """The defects visible in the window [x0, x0 + width), in window coordinates."""
        found = []
        for m in self.masks:
            a, b = max(m.x0, x0), min(m.x1, x0 + width)
            if a >= b:
                continue
            crop = m.mask[:, a - m.x0 : b - m.x0]
            rows = np.flatnonzero(crop.any(axis=1))
            cols = np.flatnonzero(crop.any(axis=0))
            if rows.size == 0:
                continue
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            bbox = (a - x0 + int(c0), m.y0 + int(r0), a - x0 + int(c1), m.y0 + int(r1))
            found.append(
                TruthDefect(
                    defect_id=m.spec.defect_id,
                    kind=m.spec.kind,
                    position_m=m.spec.x_px / px_per_m,
                    bbox=bbox,
                    mask=crop[r0:r1, c0:c1],
                )
            )
        return tuple(found)


class RopeScene:
    """The endless rope of one seed: renders any stretch, with its defects."""

    def __init__(
        self,
        look: RopeLook,
        defects_per_m: float,
        kinds: tuple[str, ...] = DEFECT_KINDS,
    ) -> None:
        self.look = look
        self.renderer = RopeRenderer(look)
        self.px_per_m = look.px_per_mm * 1000.0
        self.defects_per_m = defects_per_m
        self.kinds = kinds

    def defects_near(self, x0: int, x1: int) -> list[DefectSpec]:
        """Every defect that may touch columns [x0, x1)."""
        reach = max(EXTENT_MM.values()) * self.look.px_per_mm
        first = int(np.floor((x0 - reach) / self.px_per_m))
        last = int(np.floor((x1 + reach) / self.px_per_m))
        specs: list[DefectSpec] = []
        for metre in range(max(first, 0), last + 1):
            specs += defects_in_metre(
                metre, self.defects_per_m, self.look.seed, self.px_per_m, self.kinds
            )
        return specs

    def render_span(
        self, x0: int, width: int, defects: list[DefectSpec] | None = None
    ) -> RenderedSpan:
        """Render [x0, x0 + width) with the given defects (default: the rope's own)."""
        specs = self.defects_near(x0, x0 + width) if defects is None else defects
        profile = thickness_profile(specs, self.look.px_per_mm)
        image, geometry = self.renderer.render(x0, width, profile)
        masks = paint_defects(image, geometry, self.renderer, specs, profile)
        return RenderedSpan(x0=x0, image=image, masks=masks)


class SyntheticSource:
    """The demo camera: frames of the moving synthetic rope (see the module doc)."""

    name = "synthetic"

    def __init__(self, cfg: SyntheticSourceConfig, line: LineConfig) -> None:
        if line.rope_axis != "horizontal":
            raise ConfigError(
                "the synthetic line renders a horizontal rope",
                "set line.rope_axis: horizontal for the synthetic source",
            )
        if line.image_travel != "negative":
            raise ConfigError(
                "the synthetic rope runs towards x = 0 (right to left)",
                "set line.image_travel: negative for the synthetic source",
            )
        look = RopeLook(
            height=cfg.height,
            px_per_mm=cfg.px_per_mm,
            diameter_mm=line.rope_diameter_mm,
            seed=cfg.seed,
        )
        if look.radius_px * 2 * 1.6 > cfg.height:
            raise ConfigError(
                f"a {line.rope_diameter_mm} mm rope at {cfg.px_per_mm} px/mm does not "
                f"fit in {cfg.height} rows with its defects",
                "lower source.px_per_mm or raise source.height",
            )
        self.cfg = cfg
        self.scene = RopeScene(look, cfg.defects_per_m)
        self.px_per_m = self.scene.px_per_m
        self.step_px = line.speed_m_per_s / cfg.fps * self.px_per_m
        self.segment_px = round(SEGMENT_M * self.px_per_m)
        self._pacer = FramePacer(cfg.fps, cfg.realtime)
        self._executor: ThreadPoolExecutor | None = None
        self._spans: dict[int, Future[RenderedSpan]] = {}
        self._noise = np.random.default_rng([cfg.seed, 11]).integers(
            0,
            SENSOR_NOISE_LEVELS,
            (cfg.height, cfg.width + _NOISE_SHIFT * _NOISE_PLANES, 3),
            dtype=np.uint8,
        )
        self._pos_px = 0.0
        self._frame_id = 0

    def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="rope-render")
        self._pacer.restart()
        self._request(round(self._pos_px) // self.segment_px)
        log.info(
            "synthetic_line_opened",
            shape=self.frame_shape,
            step_px=round(self.step_px, 2),
            defects_per_m=self.cfg.defects_per_m,
            seed=self.cfg.seed,
        )

    def close(self) -> None:
        executor, self._executor = self._executor, None
        self._spans.clear()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.cfg.height, self.cfg.width, 3)

    @property
    def node_map(self) -> None:
        return None

    @property
    def counters(self) -> dict[str, int]:
        return {}

    @property
    def position_m(self) -> float:
        """Rope coordinate under the camera centre for the next frame."""
        return (round(self._pos_px) + self.cfg.width / 2) / self.px_per_m

    def _request(self, segment: int) -> Future[RenderedSpan]:
        future = self._spans.get(segment)
        if future is None:
            if self._executor is None:
                raise RuntimeError("synthetic source not open")
            width = self.segment_px + self.cfg.width + 1
            x0 = segment * self.segment_px
            future = self._executor.submit(self.scene.render_span, x0, width)
            self._spans[segment] = future
        return future

    def _span(self, segment: int) -> RenderedSpan:
        span = self._request(segment).result()
        for old in [k for k in self._spans if k < segment]:
            del self._spans[old]
        self._request(segment + 1)
        return span

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        if not self._pacer.wait(timeout_s):
            return None
        offset = round(self._pos_px)
        span = self._span(offset // self.segment_px)
        local = offset - span.x0
        width = self.cfg.width
        window = span.image[:, local : local + width]
        shift = _NOISE_SHIFT * (self._frame_id % _NOISE_PLANES)
        cv2.add(window, self._noise[:, shift : shift + width], dst=slot)
        info = FrameInfo(
            timestamp_ns=time.monotonic_ns(),
            camera_frame_id=self._frame_id,
            position_m=(offset + width / 2) / self.px_per_m,
            truth=span.truth(offset, width, self.px_per_m),
        )
        self._frame_id += 1
        self._pos_px += self.step_px
        return info
