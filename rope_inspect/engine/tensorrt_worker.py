"""One worker thread's share of the TensorRT backend.

Each thread that runs the engine owns: the device's primary CUDA context (retained),
a CUDA stream, a TensorRT execution context, device buffers for one batch (input tiles,
maps, scores) and pinned host buffers, which grow when a frame brings more tiles than
ever before and are reused after. Nothing here is shared between threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rope_inspect.engine.base import batch_slices
from rope_inspect.engine.cuda_tiling import (
    DeviceGrid,
    check_grid,
    compile_kernels,
    tile_launch,
)
from rope_inspect.errors import EngineError
from rope_inspect.vision.tile_shape import TileShape


def _free_pinned(array: np.ndarray) -> None:
    """Release a `pagelocked_empty` array's page-locked allocation now."""
    allocation: Any = array.base
    allocation.free()


class Worker:
    """Execution context, stream and buffers of one thread."""

    def __init__(
        self, cuda: Any, device: Any, engine: Any, tile: TileShape, max_batch: int
    ) -> None:
        self._cuda = cuda
        self.tile = tile
        pixels = tile[0] * tile[1]
        self.ctx = device.retain_primary_context()
        self._pinned: dict[str, np.ndarray] = {}
        self._device: dict[str, tuple[Any, int]] = {}  # name -> (allocation, bytes)
        self._kernels: tuple[Any, Any, Any] | None = None
        self._grid: DeviceGrid | None = None
        with self.current():
            self.stream = cuda.Stream()
            self.context = engine.create_execution_context()
            if self.context is None:
                raise EngineError(
                    "TensorRT could not create an execution context (GPU memory?)",
                    "lower engine.max_batch or stop other GPU processes",
                )
            self.d_tiles = self._device_buffer("tiles", max_batch * pixels * 3)
            self.d_maps = self._device_buffer("maps", max_batch * pixels * 4)
            self.d_scores = self._device_buffer("scores", max_batch * 4)
            for name, buf in (
                ("tiles", self.d_tiles),
                ("anomaly_map", self.d_maps),
                ("score", self.d_scores),
            ):
                self.context.set_tensor_address(name, int(buf))

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make this worker's CUDA context current on the calling thread."""
        self.ctx.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _device_buffer(self, name: str, nbytes: int) -> Any:
        held = self._device.get(name)
        if held is not None and held[1] >= nbytes:
            return held[0]
        if held is not None:
            held[0].free()
        buf = self._cuda.mem_alloc(nbytes)
        self._device[name] = (buf, nbytes)
        return buf

    def _pinned_buffer(self, name: str, count: int, dtype: Any) -> np.ndarray:
        buf = self._pinned.get(name)
        if buf is None or buf.size < count:
            if buf is not None:
                _free_pinned(buf)
            buf = self._cuda.pagelocked_empty(count, dtype)
            self._pinned[name] = buf
        return buf[:count]

    def outputs(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Pinned host views for `count` tile maps and scores."""
        height, width = self.tile
        maps = self._pinned_buffer("maps", count * height * width, np.float32)
        scores = self._pinned_buffer("scores", count, np.float32)
        return maps.reshape(count, 1, height, width), scores

    def stage_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Copy host tiles once into pinned memory (for asynchronous upload)."""
        staged = self._pinned_buffer("tiles", tiles.size, np.uint8).reshape(tiles.shape)
        np.copyto(staged, tiles)
        return staged

    def upload(self, staged_part: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(self.d_tiles, staged_part, self.stream)

    def execute(self, count: int) -> None:
        """Run one batch already in `d_tiles`; shapes set before, checked after."""
        height, width = self.tile
        if not self.context.set_input_shape("tiles", (count, height, width, 3)):
            raise EngineError(
                f"TensorRT refused a batch of {count} tiles",
                "the batch is outside the plan's profile: lower engine.max_batch",
            )
        shape = tuple(self.context.get_tensor_shape("anomaly_map"))
        if shape != (count, 1, height, width):
            raise EngineError(
                f"TensorRT gives anomaly maps of shape {shape} for {count} tiles",
                "rebuild the plan from an ONNX file made by rope-inspect export",
            )
        if not self.context.execute_async_v3(self.stream.handle):
            raise EngineError("TensorRT execution failed", "see the TensorRT log above")

    def download(self, part: slice, maps: np.ndarray, scores: np.ndarray) -> None:
        self._cuda.memcpy_dtoh_async(maps[part], self.d_maps, self.stream)
        self._cuda.memcpy_dtoh_async(scores[part], self.d_scores, self.stream)

    def _device_grid(self, grid: Any) -> DeviceGrid:
        if self._grid is None or self._grid.grid is not grid:
            if self._grid is not None:
                self._grid.free()
            self._grid = DeviceGrid(self._cuda, grid)
        return self._grid

    def _upload_band(self, image: np.ndarray, dg: DeviceGrid) -> tuple[Any, Any]:
        """The band to the device as uint8; a zeroed float32 band map beside it."""
        pixels = dg.height * dg.width
        band = self._pinned_buffer("band", pixels * 3, np.uint8)
        np.copyto(band.reshape(dg.height, dg.width, 3), image[dg.grid.band])
        d_band = self._device_buffer("band", pixels * 3)
        d_map = self._device_buffer("band_map", pixels * 4)
        self._cuda.memcpy_htod_async(d_band, band, self.stream)
        self._cuda.memset_d32_async(d_map, 0, pixels, self.stream)
        return d_band, d_map

    def frame(self, image: np.ndarray, grid: Any, out: np.ndarray, max_batch: int):
        """Cut, infer, stitch and mask a frame on the GPU; fill `out`, return scores."""
        check_grid(grid, image, self.tile)
        if self._kernels is None:
            self._kernels = compile_kernels()
        cut, add, weigh = self._kernels
        dg = self._device_grid(grid)
        d_band, d_map = self._upload_band(image, dg)
        tile_h, tile_w = (np.int32(side) for side in self.tile)
        width = np.int32(dg.width)
        scores = self._pinned_buffer("scores", grid.count, np.float32)
        for part in batch_slices(grid.count, max_batch):
            count = part.stop - part.start
            origins = np.intp(int(dg.d_origins) + part.start * 8)
            launch = tile_launch(self.tile, count)
            cut(
                d_band,
                width,
                origins,
                tile_h,
                tile_w,
                self.d_tiles,
                stream=self.stream,
                **launch,
            )
            self.execute(count)
            add(
                self.d_maps,
                origins,
                tile_h,
                tile_w,
                width,
                d_map,
                stream=self.stream,
                **launch,
            )
            self._cuda.memcpy_dtoh_async(scores[part], self.d_scores, self.stream)
        pixels = dg.height * dg.width
        weigh(
            d_map,
            dg.d_inv_weight,
            np.int32(pixels),
            block=(256, 1, 1),
            grid=((pixels + 255) // 256, 1, 1),
            stream=self.stream,
        )
        band_map = self._pinned_buffer("band_map", pixels, np.float32)
        self._cuda.memcpy_dtoh_async(band_map, d_map, self.stream)
        self.stream.synchronize()
        out.fill(0.0)
        out[grid.band] = band_map.reshape(dg.height, dg.width)
        return scores

    def close(self) -> None:
        with self.current():
            self.stream.synchronize()
            if self._grid is not None:
                self._grid.free()
            for buf, _ in self._device.values():
                buf.free()
            for host in self._pinned.values():
                _free_pinned(host)
            self._device.clear()
            self._pinned.clear()
            self.context = None
        self.ctx.detach()
