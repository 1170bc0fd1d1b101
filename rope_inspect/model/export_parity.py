"""The export check of the detection model: ONNX Runtime against torch on fixed tiles.

An exported engine is accepted only when both give the same anomaly maps and scores,
within a stated tolerance, on the same deterministic rope-like uint8 tiles, at batch 1
and at a batch > 1 (which also proves the batch axis stayed dynamic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from rope_inspect.errors import EngineError
from rope_inspect.vision.tile_shape import TileShape, tile_hw

INPUT_NAME = "tiles"
OUTPUT_NAMES = ("anomaly_map", "score")
PARITY_BATCHES = (1, 3)
DEFAULT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ParityResult:
    """Largest absolute differences between ONNX Runtime and torch on fixed tiles."""

    map_max_abs_diff: float
    score_max_abs_diff: float
    tolerance: float
    batches: tuple[int, ...]

    @property
    def passed(self) -> bool:
        worst = max(self.map_max_abs_diff, self.score_max_abs_diff)
        return bool(np.isfinite(worst)) and worst <= self.tolerance


def fixed_tiles(count: int, tile: int | TileShape, seed: int = 0) -> np.ndarray:
    """Deterministic rope-like uint8 tiles: diagonal strands, noise, one bright spot;
    `tile` is a square side or (height, width)."""
    rng = np.random.default_rng(seed)
    height, width = tile_hw(tile)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tiles = np.empty((count, height, width, 3), np.uint8)
    for index in range(count):
        period = rng.uniform(12.0, 40.0)
        strands = 0.5 + 0.4 * np.sin((xx + yy * rng.uniform(0.3, 1.5)) / period * 6.28)
        image = strands[..., None] * rng.uniform(0.4, 1.0, size=3)
        image = image + rng.normal(0.0, 0.06, size=image.shape)
        cy, cx = rng.integers(min(height, width) // 4, 3 * min(height, width) // 4, 2)
        spot = (yy - cy) ** 2 + (xx - cx) ** 2 < (min(height, width) / 12.0) ** 2
        image[spot] = rng.uniform(0.8, 1.0, size=3)
        tiles[index] = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    return tiles


def check_parity(
    tile_model: nn.Module,
    onnx_path: Path,
    tile: int | TileShape,
    tolerance: float = DEFAULT_TOLERANCE,
    batches: tuple[int, ...] = PARITY_BATCHES,
) -> ParityResult:
    """Run ONNX Runtime and torch on the same fixed tiles; report the worst diffs."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    map_diff = score_diff = 0.0
    for batch in batches:
        tiles = fixed_tiles(batch, tile, seed=batch)
        with torch.no_grad():
            ref_map, ref_score = (
                t.numpy() for t in tile_model(torch.from_numpy(tiles))
            )
        ort_map, ort_score = session.run(list(OUTPUT_NAMES), {INPUT_NAME: tiles})
        if ort_map.shape != ref_map.shape or ort_score.shape != ref_score.shape:
            raise EngineError(
                f"ONNX outputs {ort_map.shape}, {ort_score.shape} for batch {batch}; "
                f"torch gives {ref_map.shape}, {ref_score.shape}",
                "the exported graph lost its dynamic batch axis; report this as a bug",
            )
        map_diff = max(map_diff, float(np.abs(ort_map - ref_map).max()))
        score_diff = max(score_diff, float(np.abs(ort_score - ref_score).max()))
    return ParityResult(map_diff, score_diff, tolerance, tuple(batches))
