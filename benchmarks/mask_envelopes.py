"""Mask benchmark helpers: a GrabCut refresh as the daemon pays it, and what the
envelope leaves out of the real photographs (ground-truth defect pixels outside it)
for GrabCut at each downscale and for the on-frame edge check against a GrabCut of
every photograph. Used by `mask_cost.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from harness import Table, interleave, median

from rope_inspect.config import MaskConfig
from rope_inspect.vision.mask_tracker import RopeMaskTracker
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tile_shape import TileShape
from rope_inspect.vision.tiling import TileGrid, tile_grid


def grid(envelope: np.ndarray, tile: int | TileShape) -> TileGrid:
    return tile_grid(envelope, tile, 16, 0.02)


def refresh(image: np.ndarray, cfg: MaskConfig, tile: int | TileShape) -> np.ndarray:
    """What one GrabCut refresh costs the daemon: mask, envelope, new tile grid."""
    mask = grabcut_rope_mask(image, "horizontal", cfg.downscale, cfg.grabcut_iterations)
    envelope = rope_envelope(mask.mask, cfg.envelope_margin_px)
    grid(envelope, tile)
    return envelope


def refresh_all(frames: list[np.ndarray], cfg: MaskConfig, tile: TileShape) -> None:
    for image in frames:
        refresh(image, cfg, tile)


def defect_masks(photos: Path, names: list[str]) -> list[np.ndarray | None]:
    """Ground-truth defect masks of the photographs (None for good ones)."""
    import cv2

    masks: list[np.ndarray | None] = []
    for name in names:
        kind, file = name.split("/")
        path = photos.parent / "ground_truth" / kind / f"{Path(file).stem}_mask.png"
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
        masks.append(None if gray is None else gray > 0)
    return masks


def downscale_table(
    frames: list[tuple[str, np.ndarray]],
    truth: list[np.ndarray | None],
    cfg: MaskConfig,
    tile: TileShape,
    rounds: int,
) -> Table:
    """GrabCut per downscale (at the shipped iterations, then the other iterations
    at 1/8): time, envelope, tiles, defect pixels it leaves out."""
    table = Table(
        "Per-frame GrabCut by downscale and iterations (real photographs, margin "
        f"{cfg.envelope_margin_px} px)",
        [
            "downscale",
            "iterations",
            "ms per frame",
            "envelope px",
            "tiles/frame",
            "defect px outside envelope",
            "defect px",
        ],
    )
    shipped = cfg.grabcut_iterations
    pairs = [(d, shipped) for d in (2, 4, 6, 8)]
    pairs += [(8, i) for i in (1, 2, 3) if i != shipped]
    variants = {
        f"{d}/{i}": cfg.model_copy(update={"downscale": d, "grabcut_iterations": i})
        for d, i in pairs
    }
    cases: dict[str, Callable[[], Any]] = {
        key: partial(refresh_all, [f for _, f in frames], variant, tile)
        for key, variant in variants.items()
    }
    timings = interleave(cases, rounds)
    for key, variant in variants.items():
        envelopes = [refresh(f, variant, tile) for _, f in frames]
        table.add(
            variant.downscale,
            variant.grabcut_iterations,
            1e3 * median(timings.wall[key]) / len(frames),
            float(np.mean([e.sum() for e in envelopes])),
            float(np.mean([grid(e, tile).count for e in envelopes])),
            outside(truth, envelopes),
            sum(int(t.sum()) for t in truth if t is not None),
        )
    return table


def outside(truth: list[np.ndarray | None], envelopes: list[np.ndarray]) -> int:
    """Ground-truth defect pixels the envelopes leave out (they go uninspected)."""
    pairs = zip(truth, envelopes, strict=True)
    return sum(int((t & ~e).sum()) for t, e in pairs if t is not None)


def agreement_table(
    frames: list[tuple[str, np.ndarray]],
    truth: list[np.ndarray | None],
    cfg: MaskConfig,
    tile: TileShape,
) -> tuple[Table, dict[str, Any]]:
    """The on-frame check's envelopes against GrabCut on every photograph, in the
    replay's order: refreshes, same tile grid, defect pixels left out, overlap."""
    tracker = RopeMaskTracker(cfg)
    tracked, refreshed = [], []
    for _, image in frames:
        version = tracker.version
        tracked.append(tracker.update(image))
        refreshed.append(tracker.version != version)
    tracker.close()
    own = [refresh(image, cfg, tile) for _, image in frames]
    same = [
        np.array_equal(grid(a, tile).origins, grid(b, tile).origins)
        for a, b in zip(tracked, own, strict=True)
    ]
    iou = [
        float((a & b).sum() / (a | b).sum()) for a, b in zip(tracked, own, strict=True)
    ]
    result = {
        "frames": len(frames),
        "grabcut_runs": sum(refreshed),
        "same_tile_grid": sum(same),
        "defect_px_outside_on_frame": outside(truth, tracked),
        "defect_px_outside_grabcut_every_frame": outside(truth, own),
        "min_envelope_iou": min(iou),
    }
    table = Table(
        f"On-frame edge check vs GrabCut on every photograph (one pass in replay "
        f"order, edge_shift_px {cfg.edge_shift_px})",
        [
            "photographs",
            "GrabCut runs",
            "same tile grid",
            "defect px outside, on-frame",
            "defect px outside, GrabCut every frame",
            "least envelope IoU",
        ],
    )
    table.add(*result.values())
    return table, result
