"""`rope-inspect eval`: whole-image anomaly maps from tiles, scores and metrics.

Each test image is cut into overlapping tiles; tile maps are averaged where they
overlap, smoothed with a Gaussian, and set to zero outside the rope envelope (the
GrabCut mask with its holes filled, widened by `eval.envelope_margin_px`, because real
defects stick out beyond the rope edge). The image score is the maximum of that map.

Pixel metrics choice: pixel AUROC, pixel AP and AUPRO are computed over *all* pixels of
every test image, with the map zeroed outside the envelope. This keeps the denominators
of the standard MVTec protocol (comparable with published figures); ground truth outside
the envelope, if any, counts as missed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from rope_inspect.errors import DataError
from rope_inspect.log import get_logger
from rope_inspect.model.draem import DraemModel
from rope_inspect.training.checkpoint import load_checkpoint
from rope_inspect.training.config import TrainConfig
from rope_inspect.training.data import MvtecLayout, TestSample, read_image, read_mask
from rope_inspect.training.metrics import detection_metrics
from rope_inspect.training.plots import overlay_image, plot_pr, plot_roc, write_overlay
from rope_inspect.vision.rope_mask import MaskCache, rope_envelope
from rope_inspect.vision.tile_shape import TileShape, oriented, tile_hw

log = get_logger(__name__)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering [0, length), last one flush."""
    if length < tile:
        raise DataError(
            f"image side {length} px is smaller than the {tile} px tile",
            "evaluate with smaller tiles: --tile-along / --tile-across "
            "(eval.tile_along / eval.tile_across in the recipe)",
        )
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


@torch.no_grad()
def infer_image(
    model: DraemModel,
    image: np.ndarray,
    tile: int | TileShape,
    overlap: int,
    batch_size: int,
) -> np.ndarray:
    """Stitched anomaly map (H x W float32) of an RGB uint8 image; overlaps averaged.

    `tile` is a square side or the (height, width) of every tile."""
    height, width = image.shape[:2]
    tile_h, tile_w = tile_hw(tile)
    boxes = [
        (top, left)
        for top in tile_starts(height, tile_h, overlap)
        for left in tile_starts(width, tile_w, overlap)
    ]
    total = np.zeros((height, width), np.float32)
    count = np.zeros((height, width), np.float32)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        tiles = np.stack([image[t : t + tile_h, x : x + tile_w] for t, x in chunk])
        batch = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0
        maps, _scores = model(batch)
        maps_np = maps[:, 0].numpy()
        for (top, left), tile_map in zip(chunk, maps_np, strict=True):
            total[top : top + tile_h, left : left + tile_w] += tile_map
            count[top : top + tile_h, left : left + tile_w] += 1.0
    return total / np.maximum(count, 1.0)


def eval_tile(cfg: TrainConfig) -> TileShape:
    """(height, width) of the inference tiles: eval.tile_along (default data.tile)
    along the rope, eval.tile_across (default data.tile_across, else the side along)
    across it."""
    along = cfg.eval.tile_along or cfg.data.tile
    across = cfg.eval.tile_across or cfg.data.tile_across or along
    return oriented(along, across, cfg.data.rope_axis)


def _score_image(
    model: DraemModel, cfg: TrainConfig, image: np.ndarray, cache: MaskCache
) -> tuple[np.ndarray, np.ndarray, float]:
    raw = infer_image(
        model, image, eval_tile(cfg), cfg.eval.overlap, cfg.eval.batch_size
    )
    if cfg.eval.smoothing_sigma > 0:
        raw = gaussian_filter(raw, cfg.eval.smoothing_sigma, mode="nearest")
    rope = cache.get(
        image, cfg.data.rope_axis, cfg.data.mask_downscale, cfg.data.mask_iterations
    ).mask
    envelope = rope_envelope(rope, cfg.eval.envelope_margin_px, cfg.data.rope_axis)
    anomaly_map = np.where(envelope, raw, 0.0).astype(np.float32)
    score = float(anomaly_map.max()) if envelope.any() else 0.0
    return anomaly_map, envelope, score


def _metrics_by_defect(
    samples: list[TestSample],
    scores: np.ndarray,
    maps: list[np.ndarray],
    truths: list[np.ndarray],
    fpr_limit: float,
) -> dict[str, Any]:
    labels = np.array([s.defect != "good" for s in samples])
    report: dict[str, Any] = {
        "overall": detection_metrics(scores, labels, maps, truths, fpr_limit)
    }
    for defect in sorted({s.defect for s in samples} - {"good"}):
        keep = [i for i, s in enumerate(samples) if s.defect in ("good", defect)]
        report[defect] = detection_metrics(
            scores[keep],
            labels[keep],
            [maps[i] for i in keep],
            [truths[i] for i in keep],
            fpr_limit,
        )
    return report


def _write_curves(
    out: Path, labels: np.ndarray, scores: np.ndarray, maps: list, truths: list
) -> None:
    pixel_scores = np.concatenate([m.ravel() for m in maps])
    pixel_labels = np.concatenate([t.ravel() for t in truths]).astype(np.uint8)
    image_curve = {"image": (labels.astype(np.uint8), scores)}
    pixel_curve = {"pixel": (pixel_labels, pixel_scores)}
    plot_roc(image_curve, "image ROC", out / "roc_image.png")
    plot_roc(pixel_curve, "pixel ROC", out / "roc_pixel.png")
    plot_pr(image_curve, "image precision-recall", out / "pr_image.png")
    plot_pr(pixel_curve, "pixel precision-recall", out / "pr_pixel.png")


def _with_tiles(
    cfg: TrainConfig, tile_across: int | None, tile_along: int | None
) -> TrainConfig:
    sides = {"tile_across": tile_across, "tile_along": tile_along}
    changes = {key: value for key, value in sides.items() if value is not None}
    if not changes:
        return cfg
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update=changes)})


def _score_all(
    model: DraemModel,
    cfg: TrainConfig,
    samples: list[TestSample],
    cache: MaskCache,
    out: Path,
    overlays: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Maps, ground-truth masks and scores of every test image (overlays written)."""
    maps, truths, scores = [], [], []
    for sample in samples:
        image = read_image(sample.image_path)
        anomaly_map, envelope, score = _score_image(model, cfg, image, cache)
        truth = np.zeros(image.shape[:2], bool)
        if sample.mask_path is not None:
            truth = read_mask(sample.mask_path, image.shape[:2], sample.image_path)
        maps.append(anomaly_map)
        truths.append(truth)
        scores.append(score)
        if overlays:
            picture = overlay_image(image, anomaly_map, envelope, truth, score)
            name = f"{sample.defect}_{sample.image_path.stem}.png"
            write_overlay(out / "overlays" / name, picture)
        log.debug("eval_image", path=str(sample.image_path), score=score)
    return maps, truths, scores


def evaluate_checkpoint(
    checkpoint: Path,
    data_root: Path | None,
    out: Path,
    overlays: bool = True,
    mask_cache: Path | None = None,
    tile_across: int | None = None,
    tile_along: int | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on `<root>/test`; write report.json, curves, overlays.

    `tile_across` / `tile_along` override the recipe's eval.tile_across / tile_along
    (the daemon's tiling.tile_across / tiling.tile)."""
    model, cfg, step = load_checkpoint(checkpoint)
    cfg = _with_tiles(cfg, tile_across, tile_along)
    model.eval()
    torch.set_num_threads(cfg.threads)
    root = data_root or cfg.data.root
    samples = MvtecLayout(root).test_samples()
    cache = MaskCache(mask_cache or out.parent.parent / "mask-cache")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    maps, truths, scores = _score_all(model, cfg, samples, cache, out, overlays)
    score_array = np.array(scores)
    labels = np.array([s.defect != "good" for s in samples])
    metrics = _metrics_by_defect(
        samples, score_array, maps, truths, cfg.eval.aupro_fpr_limit
    )
    report = {
        "checkpoint": str(checkpoint),
        "step": step,
        "data_root": str(root),
        "images": len(samples),
        "pixel_metrics_region": "all pixels, map zeroed outside the rope envelope",
        "envelope_margin_px": cfg.eval.envelope_margin_px,
        "tile": list(eval_tile(cfg)),
        "overlap": cfg.eval.overlap,
        "smoothing_sigma": cfg.eval.smoothing_sigma,
        "metrics": metrics,
        "scores": {
            f"{s.defect}/{s.image_path.name}": round(v, 6)
            for s, v in zip(samples, scores, strict=True)
        },
        "eval_seconds": round(time.monotonic() - started, 1),
    }
    _write_curves(out, labels, score_array, maps, truths)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("eval_done", out=str(out), **metrics["overall"])
    return report
