"""The tile grid over the rope envelope, cutting tiles out of a frame, and stitching.

Only tiles that cover the rope are inferred. Tiles are `tile` px along the rope and
`tile_across` px across it (square when unset; see `tile_shape`). Along the rope axis
the tiles step by `side - overlap` over the envelope's extent; across it, each column
of tiles is laid centred on the envelope's extent inside that column, so a horizontal
rope gets a band of tiles that follows the rope: one row when `tile_across` spans the
envelope band. Every tile lies fully inside the frame (the last one is shifted
inward), and tiles whose envelope share is below `min_fraction` are skipped. The grid
depends only on the envelope, so `RopeTiler` recomputes it only when the mask tracker
publishes a new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from rope_inspect.config import TilingConfig
from rope_inspect.errors import ConfigError, DataError
from rope_inspect.log import get_logger
from rope_inspect.vision.tile_shape import TileShape, describe, side_keys, tile_hw

log = get_logger(__name__)

Window = tuple[slice, slice]


@dataclass(frozen=True, eq=False)
class TileGrid:
    """Where the tiles of a frame lie, and how their maps are averaged back."""

    tile: TileShape  # (height, width) of every tile
    shape: tuple[int, int]
    origins: np.ndarray  # N x 2 int (y, x) of each tile's top-left corner
    windows: tuple[Window, ...] = field(repr=False)
    inv_weight: np.ndarray = field(repr=False)  # H x W: 1 / tiles over px, 0 off-rope
    band: Window  # bounding box of all tiles
    envelope_px: int

    @property
    def count(self) -> int:
        return len(self.windows)

    @property
    def envelope_tiles(self) -> float:
        """How many tiles the envelope's area is worth: the least any grid needs."""
        return self.envelope_px / float(self.tile[0] * self.tile[1])

    def tiles_per_covered(self, mask: np.ndarray | None = None) -> float:
        """Tiles inferred per tile's worth of `mask` (default: of the envelope)."""
        covered = self.envelope_tiles if mask is None else _area_tiles(mask, self.tile)
        return self.count / covered if covered > 0 else 0.0


def _area_tiles(mask: np.ndarray, tile: TileShape) -> float:
    return int(np.count_nonzero(mask)) / float(tile[0] * tile[1])


def _starts(lo: int, hi: int, tile: int, stride: int, limit: int) -> list[int]:
    """Tile starts covering [lo, hi] with `tile` px steps of `stride`, all inside
    [0, limit - tile], centred on the interval where the frame allows."""
    length = hi - lo + 1
    count = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    span = tile + (count - 1) * stride
    first = lo - (span - length) // 2
    first = min(max(first, 0), max(limit - span, 0))
    starts = [min(first + k * stride, limit - tile) for k in range(count)]
    return list(dict.fromkeys(starts))


def _origins_horizontal(
    envelope: np.ndarray, tile: TileShape, overlap: int, min_fraction: float
) -> list[tuple[int, int]]:
    """Origins for a horizontal rope; `tile` is (across, along) = (height, width)."""
    height, width = envelope.shape
    across, along = tile
    columns = np.flatnonzero(envelope.any(axis=0))
    if columns.size == 0:
        return []

    origins = []
    area = float(across * along)
    first, last = int(columns[0]), int(columns[-1])
    for x in _starts(first, last, along, along - overlap, width):
        rows = np.flatnonzero(envelope[:, x : x + along].any(axis=1))
        if rows.size == 0:
            continue
        top, bottom = int(rows[0]), int(rows[-1])
        for y in _starts(top, bottom, across, across - overlap, height):
            share = np.count_nonzero(envelope[y : y + across, x : x + along]) / area
            if share > 0 and share >= min_fraction:
                origins.append((y, x))
    return origins


def check_tile_fits(
    frame: tuple[int, ...], tile: int | TileShape, axis: str = "horizontal"
) -> None:
    """Refuse a (height, width) `frame` that one `tile` does not fit in, naming the
    tiling key to shrink for a line along `axis`."""
    tile = tile_hw(tile)
    if len(frame) == 2 and frame[0] >= tile[0] and frame[1] >= tile[1]:
        return
    if len(frame) != 2:
        raise ValueError(f"a {frame} frame is not an H x W image")
    # a square tile is tiling.tile on both sides (tile_across unset)
    keys = side_keys(axis) if tile[0] != tile[1] else ("tiling.tile", "tiling.tile")
    too_big = [
        f"{key} {side} > frame {name} {limit} px"
        for key, side, limit, name in zip(
            keys, tile, frame, ("height", "width"), strict=True
        )
        if side > limit
    ]
    raise DataError(
        f"a {frame[0]} x {frame[1]} px frame is smaller than one {describe(tile)} "
        f"tile ({'; '.join(too_big)})",
        "set the tile sides no larger than the frame (and multiples of the model's "
        "stride, 16 for the shipped models), then export an engine for them "
        "(rope-inspect export --tile W --tile-height H); or use a larger frame "
        "(source width / height, camera AOI)",
    )


def _check_grid_args(
    shape: tuple[int, ...], tile: TileShape, overlap: int, axis: str
) -> None:
    if overlap >= min(tile):
        raise ConfigError(
            f"tiling.overlap {overlap} must be smaller than the tile's sides {tile}",
            f"set tiling.overlap below {min(tile)} (a quarter of the tile is plenty)",
        )
    check_tile_fits(shape, tile, axis)


def tile_grid(
    envelope: np.ndarray,
    tile: int | TileShape,
    overlap: int,
    min_fraction: float,
    axis: str = "horizontal",
) -> TileGrid:
    """The tiles over the bool H x W rope `envelope` (see the module docstring);
    `tile` is a square side or the (height, width) of every tile in the frame."""
    tile_h, tile_w = shape = tile_hw(tile)
    _check_grid_args(envelope.shape, shape, overlap, axis)
    if axis == "vertical":
        across_first = (tile_w, tile_h)
        swapped = _origins_horizontal(envelope.T, across_first, overlap, min_fraction)
        origins = [(y, x) for x, y in swapped]
    else:
        origins = _origins_horizontal(envelope, shape, overlap, min_fraction)

    height, width = envelope.shape
    windows = tuple((slice(y, y + tile_h), slice(x, x + tile_w)) for y, x in origins)
    weight = np.zeros((height, width), np.float32)
    for window in windows:
        weight[window] += 1.0
    inv_weight = np.divide(1.0, weight, out=np.zeros_like(weight), where=weight > 0)
    inv_weight *= envelope
    if origins:
        top, left = np.min(origins, axis=0)
        bottom, right = np.max(origins, axis=0) + np.array(shape)
        band = (slice(int(top), int(bottom)), slice(int(left), int(right)))
    else:
        band = (slice(0, 0), slice(0, 0))
    return TileGrid(
        tile=shape,
        shape=(height, width),
        origins=np.array(origins, dtype=np.int32).reshape(-1, 2),
        windows=windows,
        inv_weight=inv_weight,
        band=band,
        envelope_px=int(np.count_nonzero(envelope)),
    )


def cut_tiles(image: np.ndarray, grid: TileGrid, out: np.ndarray) -> np.ndarray:
    """Copy the grid's tiles of an H x W x 3 frame into `out`; return `out[:count]`."""
    if out.shape[0] < grid.count or out.shape[1:] != (*grid.tile, 3):
        raise ValueError(f"tile buffer {out.shape} cannot hold {grid.count} tiles")
    if image.shape[:2] != grid.shape:
        raise ValueError(f"frame {image.shape[:2]} does not match grid {grid.shape}")
    for index, window in enumerate(grid.windows):
        out[index] = image[window]
    return out[: grid.count]


def stitch(maps: np.ndarray, grid: TileGrid, out: np.ndarray) -> np.ndarray:
    """Average the N x 1 x h x w tile maps into the float32 H x W `out`, masked to
    the envelope (0 off the rope and where no tile lies); return `out`."""
    out.fill(0.0)
    return _stitch_band(maps, grid, out)


def _stitch_band(maps: np.ndarray, grid: TileGrid, out: np.ndarray) -> np.ndarray:
    """`stitch` into an `out` that is 0 everywhere the grid's tiles do not reach."""
    for index, window in enumerate(grid.windows):
        # OpenCV adds into the strided view in place; numpy's `+=` on such a view
        # allocates an iteration buffer per tile (32 KB at 64 px)
        view = out[window]
        cv2.add(view, maps[index, 0], dst=view)
    band = grid.band
    np.multiply(out[band], grid.inv_weight[band], out=out[band])
    return out


class RopeTiler:
    """The inspection stage's tiling: grid cache, tile buffer and frame map buffer.

    `grid_for(envelope)` recomputes the grid only when given a different envelope
    object (the mask tracker publishes a new array on every refresh and never changes
    a published one). `cut` and `stitch` then work in buffers owned here, so a frame
    allocates nothing.
    """

    def __init__(self, tiling_cfg: TilingConfig, axis: str = "horizontal") -> None:
        self.cfg = tiling_cfg
        self.axis = axis
        self.tile = tiling_cfg.shape(axis)
        self.grid: TileGrid | None = None
        self.recomputes = 0
        self._envelope: np.ndarray | None = None
        self._tiles = np.empty((0, *self.tile, 3), np.uint8)
        self._map = np.zeros((0, 0), np.float32)

    def grid_for(self, envelope: np.ndarray) -> TileGrid:
        if self.grid is not None and envelope is self._envelope:
            return self.grid
        cfg = self.cfg
        grid = tile_grid(
            envelope, self.tile, cfg.overlap, cfg.min_rope_fraction, self.axis
        )
        if grid.count > self._tiles.shape[0]:
            self._tiles = np.empty((grid.count, *self.tile, 3), np.uint8)
        if self._map.shape != grid.shape:
            self._map = np.zeros(grid.shape, np.float32)
        self._map.fill(0.0)  # outside the new band it stays 0 from now on
        self.grid, self._envelope = grid, envelope
        self.recomputes += 1
        log.info(
            "tile_grid",
            tiles=grid.count,
            envelope_tiles=round(grid.envelope_tiles, 2),
            tiles_per_covered=round(grid.tiles_per_covered(), 2),
        )
        return grid

    def cut(self, image: np.ndarray, grid: TileGrid) -> np.ndarray:
        """The grid's tiles of `image` as a uint8 N x h x w x 3 view of the buffer."""
        return cut_tiles(image, grid, self._tiles)

    def stitch(self, maps: np.ndarray, grid: TileGrid) -> np.ndarray:
        """The frame anomaly map: valid until the next `stitch`, not to be modified
        (only the grid's band is rewritten per frame)."""
        if grid is not self.grid:
            return stitch(maps, grid, self._map)
        self._map[grid.band] = 0.0
        return _stitch_band(maps, grid, self._map)
