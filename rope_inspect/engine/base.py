"""The engine interface: uint8 tiles in, anomaly maps and tile scores out.

Every backend (ONNX Runtime, torch, TensorRT) implements `Engine`. The inspection stage
calls `infer` once per frame with all the frame's tiles as one batch; a backend splits
batches larger than its `max_batch` itself. Outputs that are not finite are an
`EngineError`: the daemon marks the frame uninspected and raises the fault output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from rope_inspect.engine.sidecar import Sidecar
from rope_inspect.errors import EngineError
from rope_inspect.vision.tile_shape import TileShape


@runtime_checkable
class Engine(Protocol):
    """An inference engine for the anomaly model.

    `infer(tiles)` takes uint8 N x h x w x 3 (C-contiguous, in the channel order of
    the sidecar; h x w is `sidecar.tile_shape`, square or not) and returns `(maps,
    scores)`: float32 N x 1 x h x w in [0, 1] and
    float32 N. The returned arrays may be views into buffers the engine reuses: they
    are valid until the next `infer` call on the same engine.
    """

    name: str
    sidecar: Sidecar

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def close(self) -> None: ...


def check_tiles(tiles: np.ndarray, tile: TileShape) -> None:
    """Refuse a tile batch the engine cannot take as it lies (no copy is made);
    `tile` is the engine's (height, width)."""
    shape = tiles.shape
    height, width = tile
    if tiles.dtype != np.uint8 or len(shape) != 4 or shape[1:] != (height, width, 3):
        raise EngineError(
            f"engine takes uint8 N x {height} x {width} x 3 tiles, got {tiles.dtype} "
            f"{shape}",
            "cut tiles with rope_inspect.vision.tiling.cut_tiles into a uint8 buffer",
        )
    if not tiles.flags.c_contiguous:
        raise EngineError(
            "engine input tiles must be C-contiguous",
            "pass the preallocated tile buffer (or a leading slice of it), not a view",
        )


def check_finite(name: str, maps: np.ndarray, scores: np.ndarray) -> None:
    """Raise EngineError when an output holds NaN or inf.

    A sum is finite only when every element is (values lie in [0, 1], so the sum cannot
    overflow float32): one pass, no temporary array.
    """
    if not (np.isfinite(maps.sum()) and np.isfinite(scores.sum())):
        raise EngineError(
            f"engine {name} produced NaN or inf in its outputs; frame not inspected",
            "check the engine file (re-export or rebuild it); for TensorRT FP16 try "
            "--precision fp32",
        )


def batch_slices(count: int, max_batch: int) -> Iterator[slice]:
    """Consecutive slices of at most `max_batch` covering `range(count)`."""
    for start in range(0, count, max_batch):
        yield slice(start, min(start + max_batch, count))
