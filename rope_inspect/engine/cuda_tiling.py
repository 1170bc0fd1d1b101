"""CUDA-side tiling for the TensorRT backend: cut, stitch and mask on the GPU.

The frame's rope band (the bounding box of the tile grid) goes to the device once per
frame as uint8. Three small kernels then do on the GPU what `vision.tiling` does on the
host: cut the (overlapping) tiles out of the band into the engine's input, add each tile
map back into a band map, and multiply by the grid's inverse-coverage weight, which is
zero off the rope envelope. So overlapping pixels cross the bus once, and only the
stitched band map and the tile scores come back.

The kernels are compiled once per CUDA context with pycuda's `SourceModule` (nvcc). The
result equals `stitch(maps_of(cut_tiles(frame)), grid)` of the host path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rope_inspect.errors import EngineError
from rope_inspect.vision.tile_shape import TileShape, describe

BLOCK = 16

KERNELS = r"""
__global__ void cut_tiles(const unsigned char* band, int band_w,
                          const int* origins, int tile_h, int tile_w,
                          unsigned char* out)
{
    const int k = blockIdx.z;
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= tile_w || y >= tile_h) return;
    const size_t src = ((size_t)(origins[2 * k] + y) * band_w
                        + (size_t)(origins[2 * k + 1] + x)) * 3;
    const size_t dst = (((size_t)k * tile_h + y) * tile_w + x) * 3;
    out[dst] = band[src];
    out[dst + 1] = band[src + 1];
    out[dst + 2] = band[src + 2];
}

__global__ void add_tile_maps(const float* maps, const int* origins, int tile_h,
                              int tile_w, int band_w, float* band_map)
{
    const int k = blockIdx.z;
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= tile_w || y >= tile_h) return;
    const size_t at = (size_t)(origins[2 * k] + y) * band_w + origins[2 * k + 1] + x;
    atomicAdd(band_map + at, maps[((size_t)k * tile_h + y) * tile_w + x]);
}

__global__ void weigh(float* band_map, const float* inv_weight, int count)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) band_map[i] *= inv_weight[i];
}
"""


def find_nvcc() -> str | None:
    """nvcc on PATH, under CUDA_HOME, or where JetPack puts it."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        candidate = Path(root) / "bin" / "nvcc"
        if root and candidate.is_file():
            return str(candidate)
    return None


def compile_kernels() -> tuple[Any, Any, Any]:
    """(cut_tiles, add_tile_maps, weigh) for the current CUDA context."""
    from pycuda.compiler import SourceModule

    nvcc = find_nvcc()
    if nvcc is None:
        raise EngineError(
            "nvcc (the CUDA compiler) is not installed: CUDA-side tiling needs it",
            "install the CUDA toolkit (JetPack: sudo apt install cuda-nvcc-12-6) or "
            "put /usr/local/cuda/bin on PATH",
        )
    module = SourceModule(KERNELS, nvcc=nvcc)
    return (
        module.get_function("cut_tiles"),
        module.get_function("add_tile_maps"),
        module.get_function("weigh"),
    )


class DeviceGrid:
    """A tile grid's band geometry, origins and weights, uploaded once per grid."""

    def __init__(self, cuda: Any, grid: Any) -> None:
        rows, cols = grid.band
        self.grid = grid
        self.top, self.left = rows.start, cols.start
        self.height, self.width = rows.stop - rows.start, cols.stop - cols.start
        relative = grid.origins.astype(np.int32) - np.array([self.top, self.left])
        self.origins = np.ascontiguousarray(relative, dtype=np.int32)
        self.d_origins = cuda.to_device(self.origins)
        weights = np.ascontiguousarray(grid.inv_weight[grid.band], dtype=np.float32)
        self.d_inv_weight = cuda.to_device(weights)

    def free(self) -> None:
        self.d_origins.free()
        self.d_inv_weight.free()


def tile_launch(tile: TileShape, count: int) -> dict[str, tuple[int, int, int]]:
    """Block and grid of a per-tile-pixel kernel over `count` (height, width) tiles."""
    rows = (tile[0] + BLOCK - 1) // BLOCK
    columns = (tile[1] + BLOCK - 1) // BLOCK
    return {"block": (BLOCK, BLOCK, 1), "grid": (columns, rows, count)}


def check_grid(grid: Any, image: np.ndarray, tile: TileShape) -> None:
    if tuple(grid.tile) != tuple(tile):
        raise EngineError(
            f"tile grid of {describe(grid.tile)}, engine built for {describe(tile)} "
            "tiles",
            "set tiling.tile (and tiling.tile_across) to the engine's tile shape, or "
            f"rebuild the engine for {describe(grid.tile)}",
        )
    if image.shape[:2] != grid.shape or image.dtype != np.uint8 or image.ndim != 3:
        raise EngineError(
            f"frame {image.shape} {image.dtype} does not match the tile grid "
            f"{grid.shape}",
            "recompute the grid for this frame size",
        )
