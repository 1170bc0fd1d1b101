"""Parity between a built engine and the ONNX file it came from.

After `build-engine`, the new engine (a TensorRT plan or an optimised ONNX file) and
ONNX Runtime on the source ONNX run the same fixed tiles. The report gives the largest
and mean absolute difference of the anomaly maps and of the tile scores, and whether the
tile decisions (defect / no defect at the calibrated threshold) agree. A decision that
flips while the reference score lies within the tolerance of the threshold is counted as
borderline, not as a failure: no engine can promise more than its tolerance there.

The fixed tiles are real rope tiles cut in memory from the photographs in
`../shared/data/mvtec3d-rope` when that folder is present (never written anywhere),
otherwise a deterministic synthetic three-strand texture with a few bright defects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rope_inspect.errors import EngineError
from rope_inspect.vision.image_io import read_rgb
from rope_inspect.vision.tile_shape import TileShape, tile_hw

# (tiles uint8 N x h x w x 3) -> (maps float32 N x 1 x h x w, scores float32 N)
InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

DATA_ENV = "ROPE_INSPECT_DATA"
DEFAULT_TILE_COUNT = 24


@dataclass(frozen=True)
class ParityReport:
    """What parity measured, and whether the engine passes."""

    tiles: int
    tile_source: str
    tolerance: float
    pixel_threshold: float
    image_threshold: float
    max_abs_diff: float
    mean_abs_diff: float
    score_max_abs_diff: float
    pixel_agreement: float
    tile_decisions_agree: int
    flipped_tiles: list[int]
    borderline_flips: list[int]
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"parity {verdict} on {self.tiles} {self.tile_source} tiles: anomaly map "
            f"max |diff| {self.max_abs_diff:.2e}, mean {self.mean_abs_diff:.2e} "
            f"(tolerance {self.tolerance:g}); score max |diff| "
            f"{self.score_max_abs_diff:.2e}; tile decisions agree "
            f"{self.tile_decisions_agree}/{self.tiles} at threshold "
            f"{self.image_threshold:g} ({len(self.borderline_flips)} borderline); "
            f"pixels agree {self.pixel_agreement:.4%} at {self.pixel_threshold:g}"
            + ("" if self.passed else f": {self.reason}")
        )


def default_data_root() -> Path | None:
    """The real rope photographs if this machine has them (env var, beside the repo)."""
    candidates = []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]))
    candidates.append(Path("../shared/data/mvtec3d-rope"))
    candidates.append(Path(__file__).resolve().parents[3] / "shared/data/mvtec3d-rope")
    for path in candidates:
        if (path / "validation" / "good").is_dir():
            return path
    return None


def _rope_row(image: np.ndarray) -> int:
    """Row of the rope's centre in a horizontal-rope photo: the brightest row band."""
    rows = image.mean(axis=(1, 2))
    smoothed = np.convolve(rows, np.ones(15) / 15, mode="same")
    return int(np.argmax(smoothed))


def _cut(image: np.ndarray, cy: int, cx: int, tile: TileShape) -> np.ndarray:
    """A (height, width) crop centred at (cy, cx), zero padded outside the image."""
    height, width = tile
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = cy - height // 2, cx - width // 2
    ys = slice(max(y0, 0), min(y0 + height, image.shape[0]))
    xs = slice(max(x0, 0), min(x0 + width, image.shape[1]))
    out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[ys, xs]
    return out


def _defect_centre(mask_path: Path) -> tuple[int, int] | None:
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None or not (mask > 0).any():
        return None
    ys, xs = np.nonzero(mask)
    return int(ys.mean()), int(xs.mean())


def real_rope_tiles(root: Path, tile: TileShape, count: int) -> np.ndarray:
    """Tiles along the rope of good images, plus tiles centred on real defects."""
    tiles: list[np.ndarray] = []
    for mask_path in sorted((root / "ground_truth").glob("*/*_mask.png"))[: count // 3]:
        image_path = root / "test" / mask_path.parent.name / mask_path.name[:-9]
        centre = _defect_centre(mask_path)
        if centre is not None and image_path.with_suffix(".png").exists():
            image = read_rgb(image_path.with_suffix(".png"))
            tiles.append(_cut(image, centre[0], centre[1], tile))
    good = sorted((root / "validation" / "good").glob("*.png"))
    index = 0
    while len(tiles) < count and good:
        image = read_rgb(good[index % len(good)])
        cx = tile[1] // 2 + (index * 97) % max(image.shape[1] - tile[1], 1)
        tiles.append(_cut(image, _rope_row(image), cx, tile))
        index += 1
    return np.stack(tiles[:count])


def synthetic_rope_tiles(tile: TileShape, count: int, seed: int = 7) -> np.ndarray:
    """A three-strand lay texture with noise; every third tile carries a bright blob."""
    rng = np.random.default_rng(seed)
    height, width = tile
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tiles = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi)
        lay = 0.5 + 0.5 * np.sin((xx + yy) * (2 * np.pi / 24.0) + phase)
        base = 70 + 110 * lay[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
        base += rng.normal(0, 8, size=base.shape)
        if i % 3 == 0:
            cy = rng.integers(height // 4, 3 * height // 4)
            cx = rng.integers(width // 4, 3 * width // 4)
            sigma = min(tile) / 16
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
            base += 120 * blob[..., None]
        tiles[i] = np.clip(base, 0, 255).astype(np.uint8)
    return tiles


def fixed_tiles(
    tile: int | TileShape,
    count: int = DEFAULT_TILE_COUNT,
    data_root: Path | None = None,
) -> tuple[np.ndarray, str]:
    """The parity tiles and where they came from ("real rope" or "synthetic")."""
    tile = tile_hw(tile)
    root = data_root if data_root is not None else default_data_root()
    if root is not None and (root / "validation" / "good").is_dir():
        return real_rope_tiles(root, tile, count), "real rope"
    return synthetic_rope_tiles(tile, count), "synthetic"


def run_batched(
    infer: InferFn, tiles: np.ndarray, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run `infer` over `tiles` in batches of at most `batch`; join the outputs."""
    maps, scores = [], []
    for start in range(0, len(tiles), batch):
        m, s = infer(np.ascontiguousarray(tiles[start : start + batch]))
        maps.append(np.array(m, np.float32))  # engines may reuse their buffers
        scores.append(np.array(s, np.float32).reshape(-1))
    return np.concatenate(maps), np.concatenate(scores)


def compare_outputs(
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    *,
    tolerance: float,
    pixel_threshold: float,
    image_threshold: float,
    tile_source: str = "",
) -> ParityReport:
    """Compare two engines' outputs on the same tiles against `tolerance`."""
    ref_maps, ref_scores = reference
    maps, scores = candidate
    if ref_maps.shape != maps.shape or ref_scores.shape != scores.shape:
        raise EngineError(
            f"engine outputs have shapes {maps.shape}/{scores.shape}, the ONNX file "
            f"gives {ref_maps.shape}/{ref_scores.shape}",
            "the engine was not built from this ONNX file; rebuild it",
        )
    diff = np.abs(maps.astype(np.float64) - ref_maps)
    score_diff = np.abs(scores.astype(np.float64) - ref_scores)
    ref_decision = ref_scores >= image_threshold
    flips = np.nonzero(ref_decision != (scores >= image_threshold))[0]
    near = np.abs(ref_scores[flips] - image_threshold) <= tolerance
    pixels = np.mean((ref_maps >= pixel_threshold) == (maps >= pixel_threshold))

    reason = ""
    if not np.isfinite(maps).all() or not np.isfinite(scores).all():
        reason = "the engine produced NaN or infinite values"
    elif float(diff.max()) > tolerance:
        reason = f"anomaly map differs by {diff.max():.3g} > tolerance {tolerance:g}"
    elif float(score_diff.max()) > tolerance:
        reason = (
            f"tile score differs by {score_diff.max():.3g} > tolerance {tolerance:g}"
        )
    elif (~near).any():
        reason = (
            f"{int((~near).sum())} tile decision(s) flipped away from the threshold"
        )
    return ParityReport(
        tiles=len(ref_scores),
        tile_source=tile_source,
        tolerance=tolerance,
        pixel_threshold=pixel_threshold,
        image_threshold=image_threshold,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        score_max_abs_diff=float(score_diff.max()),
        pixel_agreement=float(pixels),
        tile_decisions_agree=int(len(ref_scores) - len(flips)),
        flipped_tiles=[int(i) for i in flips[~near]],
        borderline_flips=[int(i) for i in flips[near]],
        passed=not reason,
        reason=reason,
    )


def check_parity(
    reference: InferFn,
    candidate: InferFn,
    tiles: np.ndarray,
    *,
    batch: int,
    tolerance: float,
    pixel_threshold: float,
    image_threshold: float,
    tile_source: str = "",
) -> ParityReport:
    """Run both engines over `tiles` and compare them."""
    return compare_outputs(
        run_batched(reference, tiles, batch),
        run_batched(candidate, tiles, batch),
        tolerance=tolerance,
        pixel_threshold=pixel_threshold,
        image_threshold=image_threshold,
        tile_source=tile_source,
    )


def onnxruntime_infer(model: Path, providers: list[str] | None = None) -> InferFn:
    """An `InferFn` running `model` with ONNX Runtime (CPU unless `providers` say)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(model), options, providers=providers or ["CPUExecutionProvider"]
    )

    def infer(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, scores = session.run(["anomaly_map", "score"], {"tiles": tiles})
        return maps, scores

    return infer
