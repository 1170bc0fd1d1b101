"""The daemon's per-frame inspection, run over a folder of photographs for calibration.

Each image goes the way a frame goes in the inspection stage: GrabCut rope mask ->
envelope -> tile grid over the rope -> tiles -> engine -> stitched anomaly map -> frame
score (maximum of the smoothed map inside the envelope, `DefectFinder`). Photographs are
separate scenes, so the mask is computed for each one (as `mask.refresh_every: 1`).

The rope's width in pixels across its axis comes from the strict GrabCut mask (not
the widened envelope) computed at full resolution on up to ten of the images: at the
daemon's reduced resolution the mask's edges are blurred by the upsampling (+25 % width
at 1/4 on the real rope). It is the median over the columns (horizontal rope) of the
extent from the first to the last rope pixel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rope_inspect.config import InspectConfig
from rope_inspect.decision.calibration import Calibration
from rope_inspect.decision.defects import DefectFinder
from rope_inspect.engine.base import Engine
from rope_inspect.errors import DataError
from rope_inspect.vision.image_io import read_rgb
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tiling import cut_tiles, stitch, tile_grid

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MIN_ROPE_WIDTH_PX = 8
SCALE_IMAGES = 10


@dataclass(frozen=True)
class FrameResult:
    path: Path
    score: float
    tiles: int
    fallback: str | None  # GrabCut's fallback reason when it found no rope


def list_images(folder: Path, skip_good: bool = False) -> list[Path]:
    """Images under `folder`, sorted, recursively; `skip_good` drops `good/` folders."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder", "pass a folder of images")
    images = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not (skip_good and "good" in p.relative_to(folder).parts[:-1])
    )
    return images


def rope_width_px(mask: np.ndarray, axis: str) -> float | None:
    """Median extent of the rope across its axis in a strict bool mask (first to last
    rope pixel of each column of a horizontal rope: the gaps between strands count)."""
    across = mask if axis == "horizontal" else mask.T
    present = across.any(axis=0)
    if not present.any():
        return None
    rows = across[:, present]
    first = rows.argmax(axis=0)
    last = rows.shape[0] - 1 - rows[::-1].argmax(axis=0)
    return float(np.median(last - first + 1))


class FrameInspector:
    """One image -> score and rope width, with the daemon's config and engine."""

    def __init__(self, cfg: InspectConfig, engine: Engine) -> None:
        self.cfg = cfg
        self.engine = engine
        self.axis = cfg.line.rope_axis
        self.tile = cfg.tile_shape
        self._tiles = np.empty((0, *self.tile, 3), np.uint8)
        no_blobs = Calibration(
            line=cfg.line.name, pixel_threshold=1.0, image_threshold=1.0, mm_per_px=1.0
        )
        self.finder = DefectFinder(no_blobs, cfg.decision)

    def _anomaly_map(self, image: np.ndarray, grid: Any) -> np.ndarray:
        out = np.zeros(grid.shape, np.float32)
        fast = getattr(self.engine, "infer_frame", None)
        if fast is not None:  # TensorRT: cut, stitch and mask on the GPU
            fast(image, grid, out)
            return out
        if self._tiles.shape[0] < grid.count:
            self._tiles = np.empty((grid.count, *self._tiles.shape[1:]), np.uint8)
        tiles = cut_tiles(image, grid, self._tiles)
        maps, _scores = self.engine.infer(tiles)
        return stitch(maps, grid, out)

    def inspect(self, path: Path) -> FrameResult:
        image = read_rgb(path)
        mask_cfg, tiling = self.cfg.mask, self.cfg.tiling
        rope = grabcut_rope_mask(
            image, self.axis, mask_cfg.downscale, mask_cfg.grabcut_iterations
        )
        envelope = rope_envelope(rope.mask, mask_cfg.envelope_margin_px, self.axis)
        grid = tile_grid(
            envelope, self.tile, tiling.overlap, tiling.min_rope_fraction, self.axis
        )
        score = 0.0
        if grid.count:
            score = self.finder.find(self._anomaly_map(image, grid), envelope).score
        return FrameResult(path, score, grid.count, rope.fallback)

    def rope_widths(self, paths: list[Path]) -> list[float]:
        """Rope widths (px) in full-resolution masks of up to ten of `paths`."""
        step = max(1, len(paths) // SCALE_IMAGES)
        widths = []
        for path in paths[::step][:SCALE_IMAGES]:
            rope = grabcut_rope_mask(
                read_rgb(path), self.axis, 1, self.cfg.mask.grabcut_iterations
            )
            width = None if rope.fallback else rope_width_px(rope.mask, self.axis)
            if width is not None:
                widths.append(width)
        return widths

    def run(self, paths: list[Path], label: str) -> Iterator[FrameResult]:
        """Inspect every image, printing progress at each tenth."""
        step = max(1, len(paths) // 10)
        for index, path in enumerate(paths, 1):
            yield self.inspect(path)
            if index % step == 0 or index == len(paths):
                print(f"calibrate: {label} {index}/{len(paths)}", flush=True)
