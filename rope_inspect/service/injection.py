"""Fault injection for the daemon: real sources and engines, made to fail on schedule.

The tests and the soak run wrap a working FrameSource or Engine in one of these to
prove that the daemon survives what cameras, lighting and GPUs do on a line:

- `FlakySource`: the camera is lost after N frames for a while (reads raise
  SourceLost, reconnects fail with SourceError), then comes back;
- `MalformedFrames`: chosen frames arrive all black or saturated (a lighting failure);
- `FaultyEngine`: chosen inference calls return NaN or raise EngineError.

They delegate everything else to the wrapped object, so the rest of the path is real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rope_inspect.acquisition.base import (
    FrameInfo,
    FrameSkipped,
    FrameSource,
    SourceWrapper,
)
from rope_inspect.engine.base import check_finite
from rope_inspect.engine.sidecar import read_sidecar, sidecar_path
from rope_inspect.errors import EngineError, SourceError, SourceLost
from rope_inspect.vision.tile_shape import TileShape, tile_hw


class FlakySource(SourceWrapper):
    """Loses the camera after `lose_after` frames for `outage_s` seconds per outage."""

    def __init__(
        self,
        inner: FrameSource,
        outages: list[tuple[int, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner, f"flaky-{inner.name}")
        self.outages = sorted(outages)
        self._clock = clock
        self._lost_until: float | None = None
        self.frames = 0
        self.lost_reads = 0
        self.failed_opens = 0
        self.opens = 0
        self.lock = threading.Lock()

    @property
    def lost(self) -> bool:
        return self._lost_until is not None and self._clock() < self._lost_until

    def open(self) -> None:
        if self.lost:
            self.failed_opens += 1
            raise SourceError("injected: camera not found", "wait for the outage")
        self.opens += 1
        self.inner.open()

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        if self.outages and self.frames >= self.outages[0][0]:
            _, seconds = self.outages.pop(0)
            self._lost_until = self._clock() + seconds
        if self.lost:
            self.lost_reads += 1
            raise SourceLost("injected: camera stopped delivering")
        info = self.inner.read_into(slot, timeout_s)
        if info is not None:
            self.frames += 1
        return info


class MalformedFrames(SourceWrapper):
    """Makes chosen frames (by count from 0) black, saturated or truncated.

    Black and saturated frames reach the ring (a lighting failure); a truncated one
    is refused by the source itself with FrameSkipped, as a camera driver would.
    """

    def __init__(self, inner: FrameSource, bad: dict[int, str]) -> None:
        super().__init__(inner, f"malformed-{inner.name}")
        self.bad = dict(bad)
        self.frames = 0
        self.injected: dict[str, int] = {}

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        info = self.inner.read_into(slot, timeout_s)
        if info is None:
            return None
        kind = self.bad.get(self.frames)
        self.frames += 1
        if kind is not None:
            self.injected[kind] = self.injected.get(kind, 0) + 1
        if kind == "truncated":
            raise FrameSkipped("truncated")
        if kind == "black":
            slot.fill(0)
        elif kind == "saturated":
            slot.fill(255)
        elif kind is not None:
            raise ValueError(f"unknown malformed frame kind {kind!r}")
        return info


class FaultyEngine:
    """NaN maps or an engine error on chosen `infer` calls (from 0).

    NaN maps go through the same finite check as every backend's `infer`, so they end
    as the EngineError a real backend raises for them.
    """

    def __init__(
        self,
        inner: Any,
        nan_calls: Iterable[int] = (),
        error_calls: Iterable[int] = (),
    ) -> None:
        self.inner = inner
        self.name = f"faulty-{inner.name}"
        self.sidecar = inner.sidecar
        self.nan_calls = set(nan_calls)
        self.error_calls = set(error_calls)
        self.calls = 0

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        call = self.calls
        self.calls += 1
        if call in self.error_calls:
            raise EngineError("injected: CUDA error 700 (illegal address)")
        maps, scores = self.inner.infer(tiles)
        if call in self.nan_calls:
            maps = maps.copy()
            maps[:, :, :4, :4] = np.nan
            check_finite(self.name, maps, scores)
        return maps, scores

    def close(self) -> None:
        self.inner.close()


class SpotEngine:
    """Adds a square hot spot to the first tile's map on every `every`-th call.

    A stand-in for a defect the model would find: it drives the decision, reject and
    store path with a known number of defects, whatever the wrapped model says.
    """

    def __init__(
        self, inner: Any, every: int = 3, spot: tuple[int, int, int] = (40, 40, 20)
    ) -> None:
        self.inner = inner
        self.name = f"spot-{inner.name}"
        self.sidecar = inner.sidecar
        self.every = every
        self.spot = spot
        self.calls = 0
        self.spots = 0

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, scores = self.inner.infer(tiles)
        if self.calls % self.every == 0 and len(maps):
            y, x, side = self.spot
            maps = maps.copy()
            maps[0, 0, y : y + side, x : x + side] = 0.95
            self.spots += 1
        self.calls += 1
        return maps, scores

    def close(self) -> None:
        self.inner.close()


# (height, width) of the tiles of the shipped configs (configs/demo.yaml)
SHIPPED_TILE = (224, 160)


def export_tiny_model(path: Path, tile: int | TileShape = SHIPPED_TILE) -> Path:
    """Export an untrained, very small DRAEM of the real architecture (tests, soak).

    Never a demo model: its maps are flat noise. Exported once per path and tile
    shape (the ONNX file and its sidecar); needs torch (the `train` extra).
    """
    cached = path.is_file() and sidecar_path(path).is_file()
    if cached and read_sidecar(path).tile_shape == tile_hw(tile):
        return path
    import torch

    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import export_onnx

    torch.manual_seed(0)
    model_cfg = ModelConfig.cpu_small(
        recon_width=4, seg_width=4, depth=2, transformer=False, aspp=False
    )
    export_onnx(DraemModel(model_cfg), path, tile=tile_hw(tile))
    return path
