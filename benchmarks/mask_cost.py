"""Mask cost: GrabCut refreshes and the per-frame mask check as a share of frame time.

On a running rope (the synthetic line) the daemon's `RopeMaskTracker` runs GrabCut
on the first frame and then only every `mask.refresh_every` frames or when its
per-frame edge check sees the rope band move; each frame pays the check. On the
replay of separate photographs (`refresh_every: 1`) every frame pays a GrabCut, the
envelope and a new tile grid. Frame time is the bare engine on the frame's tiles.
Check, GrabCut and engine run interleaved, round by round, on the same frames.

GrabCut's own settings are timed too (downscale, iterations), with the envelope and
the tile grid that follow every refresh.

Target (issue 7): mask work <= 2 % of frame time.

    python benchmarks/mask_cost.py [--quick] [--model engines/x.onnx]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from harness import (
    Table,
    Target,
    bench_model,
    interleave,
    machine,
    make_parser,
    median,
    pick,
    real_photos,
    report,
    synthetic_frames,
)

from rope_inspect.config import EngineConfig, MaskConfig, TilingConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.vision.mask_tracker import RopeMaskTracker
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tiling import RopeTiler, tile_grid

TARGET_SHARE = 0.02


def refresh(image: np.ndarray, cfg: MaskConfig, tile: int) -> np.ndarray:
    """What one GrabCut refresh costs the daemon: mask, envelope, new tile grid."""
    mask = grabcut_rope_mask(image, "horizontal", cfg.downscale, cfg.grabcut_iterations)
    envelope = rope_envelope(mask.mask, cfg.envelope_margin_px)
    tile_grid(envelope, tile, 16, 0.02)
    return envelope


def frame_batches(frames: list[np.ndarray], cfg: MaskConfig, tile: int) -> list:
    tiler = RopeTiler(TilingConfig(tile=tile))
    batches = []
    for image in frames:
        envelope = refresh(image, cfg, tile)
        batches.append(tiler.cut(image, tiler.grid_for(envelope)).copy())
    return batches


def tracked_refresh_rate(frames: list[np.ndarray], cfg: MaskConfig) -> dict[str, Any]:
    """Refreshes per frame the tracker needs on these frames (edge + periodic)."""
    tracker = RopeMaskTracker(cfg)
    for image in frames:
        tracker.update(image)
        tracker.wait_idle()
    tracker.close()
    edge = tracker.edge_refreshes / len(frames)
    return {
        "edge_refreshes": tracker.edge_refreshes,
        "frames": len(frames),
        "rate": edge + 1.0 / cfg.refresh_every,  # at most: an edge refresh restarts
        "edge_rate": edge,
    }


def measure(
    name: str, frames: list[np.ndarray], engine: Any, tile: int, rounds: int
) -> dict[str, Any]:
    cfg = MaskConfig()
    batches = frame_batches(frames, cfg, tile)
    tracker = RopeMaskTracker(cfg)
    tracker.update(frames[0])

    def check() -> None:
        tracker.wait_idle()
        for image in frames:
            tracker.update(image)

    cases = {
        "check": check,
        "refresh": lambda: [refresh(f, cfg, tile) for f in frames],
        "engine": lambda: [engine.infer(b) for b in batches],
    }
    timings = interleave(cases, rounds)
    tracker.close()
    per_frame = {k: [v / len(frames) for v in t] for k, t in timings.wall.items()}
    rate = tracked_refresh_rate(frames, cfg)
    return {"source": name, "per_frame": per_frame, "refresh_rate": rate}


def share(numerator: list[float], engine: list[float], weight: float = 1.0) -> float:
    return median([weight * a / b for a, b in zip(numerator, engine, strict=True)])


def settings_table(image: np.ndarray, rounds: int) -> Table:
    """GrabCut's cost by downscale and iterations on one frame."""
    variants = {
        f"downscale {d}, iterations {i}": (d, i) for d in (2, 4, 8) for i in (1, 3)
    }
    cases: dict[str, Callable[[], Any]] = {
        k: partial(grabcut_rope_mask, image, "horizontal", d, i)
        for k, (d, i) in variants.items()
    }
    mask = grabcut_rope_mask(image).mask
    cases["rope_envelope (margin 60)"] = lambda: rope_envelope(mask, 60)
    envelope = rope_envelope(mask, 60)
    cases["tile_grid (128 / 16)"] = lambda: tile_grid(envelope, 128, 16, 0.02)
    timings = interleave(cases, rounds)
    table = Table("GrabCut settings on one frame (ms, median)", ["step", "ms"])
    for key, times in timings.wall.items():
        table.add(key, 1e3 * median(times))
    return table


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    engine = load_engine(EngineConfig(model=model.onnx, threads=args.threads), 128)
    count, rounds = pick(args, (3, 1), (12, 2), (40, 4))
    groups = {
        "synthetic line (tracker)": [f for _, f in synthetic_frames(count)],
        "real photographs (GrabCut every frame)": [
            f for _, f in real_photos(args.photos, count)
        ],
    }
    table = Table(
        "Mask work per frame against frame time (ms, median of interleaved rounds)",
        [
            "frames",
            "n",
            "engine ms/frame",
            "check ms/frame",
            "GrabCut refresh ms",
            "refreshes/frame",
            "check share",
            "refresh share",
            "mask share",
        ],
    )
    targets, extra = [], {}
    for name, frames in groups.items():
        if not frames:
            continue
        result = measure(name, frames, engine, model.tile, rounds)
        pf = result["per_frame"]
        tracked = name.startswith("synthetic")
        rate = result["refresh_rate"]["rate"] if tracked else 1.0
        check = share(pf["check"], pf["engine"]) if tracked else 0.0
        refreshing = share(pf["refresh"], pf["engine"], rate)
        table.add(
            name,
            len(frames),
            1e3 * median(pf["engine"]),
            1e3 * median(pf["check"]) if tracked else "-",
            1e3 * median(pf["refresh"]),
            rate,
            check,
            refreshing,
            check + refreshing,
        )
        targets.append(
            Target(
                f"mask share of frame time, {name}",
                check + refreshing,
                TARGET_SHARE,
                "lower",
            )
        )
        extra[name] = result
    first = next(iter(groups.values()))[0]
    tables = [table, settings_table(first, rounds + 1)]
    engine.close()
    report("mask_cost", args, model, tables, targets, started, extra)


if __name__ == "__main__":
    main()
