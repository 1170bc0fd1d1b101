"""Mask cost: GrabCut refreshes and the per-frame mask check as a share of frame time.

On a running rope (the synthetic line) the daemon's `RopeMaskTracker` runs GrabCut
on the first frame and then only every `mask.refresh_every` frames or when its
per-frame edge check sees the rope band move; each frame pays the check. On the
replay of separate photographs (`refresh_every: 1`) every frame pays a GrabCut, the
envelope and a new tile grid. Frame time is the bare engine on the frame's tiles.
Check, GrabCut and engine run interleaved, round by round, on the same frames.

The mask settings are the shipped ones (configs/demo.yaml for the line,
configs/mvtec3d-rope.yaml for the photographs). For the photographs, GrabCut is also
run at each downscale, with what it changes: envelope area, tiles per frame, and
ground-truth defect pixels left outside the envelope (which would go uninspected).

Target (issue 7): mask work <= 2 % of frame time.

    python benchmarks/mask_cost.py [--quick] [--model engines/x.onnx]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bench_inputs import bench_model, real_photos, synthetic_frames
from daemon_runs import SOURCES
from harness import (
    Table,
    Target,
    interleave,
    machine,
    make_parser,
    median,
    pick,
    report,
)

from rope_inspect.config import (
    EngineConfig,
    MaskConfig,
    TilingConfig,
    load_inspect_config,
)
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


def refresh_all(frames: list[np.ndarray], cfg: MaskConfig) -> None:
    for image in frames:
        refresh(image, cfg, 128)


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
    cfg: MaskConfig, frames: list[np.ndarray], engine: Any, tile: int, rounds: int
) -> dict[str, Any]:
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
    return {"mask": cfg.model_dump(), "per_frame": per_frame, "refresh_rate": rate}


def share(numerator: list[float], engine: list[float], weight: float = 1.0) -> float:
    return median([weight * a / b for a, b in zip(numerator, engine, strict=True)])


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
    frames: list[tuple[str, np.ndarray]], photos: Path, cfg: MaskConfig, rounds: int
) -> Table:
    """GrabCut per downscale: time, envelope, tiles, defect pixels it leaves out."""
    truth = defect_masks(photos, [name for name, _ in frames])
    table = Table(
        "Per-frame GrabCut by downscale (real photographs, iterations "
        f"{cfg.grabcut_iterations}, margin {cfg.envelope_margin_px} px)",
        [
            "downscale",
            "ms per frame",
            "envelope px",
            "tiles/frame",
            "defect px outside envelope",
            "defect px",
        ],
    )
    variants = {str(d): cfg.model_copy(update={"downscale": d}) for d in (2, 4, 6, 8)}
    cases: dict[str, Callable[[], Any]] = {
        key: partial(refresh_all, [f for _, f in frames], variant)
        for key, variant in variants.items()
    }
    timings = interleave(cases, rounds)
    for key, variant in variants.items():
        downscale = variant.downscale
        envelopes = [refresh(f, variant, 128) for _, f in frames]
        outside = sum(
            int((t & ~e).sum())
            for t, e in zip(truth, envelopes, strict=True)
            if t is not None
        )
        table.add(
            downscale,
            1e3 * median(timings.wall[key]) / len(frames),
            float(np.mean([e.sum() for e in envelopes])),
            float(np.mean([tile_grid(e, 128, 16, 0.02).count for e in envelopes])),
            outside,
            sum(int(t.sum()) for t in truth if t is not None),
        )
    return table


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    engine = load_engine(EngineConfig(model=model.onnx, threads=args.threads), 128)
    count, rounds = pick(args, (3, 1), (12, 2), (40, 4))
    photos = real_photos(args.photos, count)
    groups = {
        "synthetic line (tracker)": ("synthetic", synthetic_frames(count)),
        "real photographs (GrabCut every frame)": ("replay", photos),
    }
    table = Table(
        "Mask work per frame against frame time (shipped mask settings; ms, median "
        "of interleaved rounds)",
        [
            "frames",
            "n",
            "downscale",
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
    for name, (source, frames) in groups.items():
        if not frames:
            continue
        cfg = load_inspect_config(SOURCES[source]).mask
        result = measure(cfg, [f for _, f in frames], engine, model.tile, rounds)
        pf = result["per_frame"]
        tracked = cfg.refresh_every > 1
        rate = result["refresh_rate"]["rate"] if tracked else 1.0
        check = share(pf["check"], pf["engine"]) if tracked else 0.0
        refreshing = share(pf["refresh"], pf["engine"], rate)
        table.add(
            name,
            len(frames),
            cfg.downscale,
            1e3 * median(pf["engine"]),
            1e3 * median(pf["check"]) if tracked else "-",
            1e3 * median(pf["refresh"]),
            rate,
            check,
            refreshing,
            check + refreshing,
        )
        mask_share = check + refreshing
        targets.append(
            Target(
                f"mask share of frame time, {name}", mask_share, TARGET_SHARE, "lower"
            )
        )
        extra[name] = result
    tables = [table]
    if photos:
        replay_mask = load_inspect_config(SOURCES["replay"]).mask
        tables.append(downscale_table(photos, args.photos, replay_mask, rounds))
    engine.close()
    report("mask_cost", args, model, tables, targets, started, extra)


if __name__ == "__main__":
    main()
