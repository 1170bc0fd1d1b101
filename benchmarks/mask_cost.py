"""Mask cost: GrabCut refreshes and the per-frame mask check as a share of frame time.

On a running rope (the synthetic line) the daemon's `RopeMaskTracker` runs GrabCut
on the first frame and then only every `mask.refresh_every` frames or when its
per-frame edge check sees the rope band move; each frame pays the check. On the
replay of separate photographs (`refresh_mode: on_frame`) each photograph pays the
check and, when its rope lies elsewhere than on the last masked one, a GrabCut, the
envelope and a new tile grid for itself; with `refresh_every: 1` (the setting before)
every photograph pays them. Refreshes per frame are counted on the second pass of a
looping replay (the wrap from the last photograph to the first included). Frame time
is the bare engine on the frame's tiles. Check, GrabCut and engine run interleaved,
round by round, on the same frames.

The mask settings are the shipped ones (configs/demo.yaml for the line,
configs/mvtec3d-rope.yaml for the photographs, and those with `refresh_every: 1` for
comparison). For the photographs, GrabCut is also run at each downscale (and at 1/8
with each number of iterations), with what it changes: envelope area, tiles, and
ground-truth defect pixels left outside the envelope (which would go uninspected);
and the on-frame check's envelopes are compared with GrabCut's on every photograph
(same tile grid? defect pixels outside?).

Target (issue 7): mask work <= 2 % of frame time.

    python benchmarks/mask_cost.py [--quick] [--model engines/x.onnx]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
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
from mask_envelopes import (
    agreement_table,
    defect_masks,
    downscale_table,
    refresh,
    refresh_all,
)

from rope_inspect.config import (
    EngineConfig,
    MaskConfig,
    TilingConfig,
    load_inspect_config,
)
from rope_inspect.engine.loader import load_engine
from rope_inspect.vision.mask_tracker import EdgeProbe, RopeMaskTracker
from rope_inspect.vision.rope_mask import grabcut_rope_mask
from rope_inspect.vision.tile_shape import TileShape, tile_hw
from rope_inspect.vision.tiling import RopeTiler

TARGET_SHARE = 0.02


def frame_batches(frames: list[np.ndarray], cfg: MaskConfig, tile: TileShape) -> list:
    height, width = tile
    across = height if height != width else None
    tiler = RopeTiler(TilingConfig(tile=width, tile_across=across))
    batches = []
    for image in frames:
        envelope = refresh(image, cfg, tile)
        batches.append(tiler.cut(image, tiler.grid_for(envelope)).copy())
    return batches


def tracked_refresh_rate(frames: list[np.ndarray], cfg: MaskConfig) -> dict[str, Any]:
    """Refreshes per frame the tracker needs on these frames, on the second pass of
    a loop over them (edge + periodic; synchronous ones for on_frame)."""
    tracker = RopeMaskTracker(cfg)
    for _ in range(2):  # counts of the second pass
        refreshes, edge = tracker.refreshes, tracker.edge_refreshes
        for image in frames:
            tracker.update(image)
            tracker.wait_idle()
    tracker.close()
    edge = tracker.edge_refreshes - edge
    runs = float(tracker.refreshes - refreshes)
    if not tracker.on_frame:  # at most: an edge refresh restarts the period
        runs = edge + len(frames) / cfg.refresh_every
    return {"frames": len(frames), "refreshes": runs, "edge_refreshes": edge}


def checker(frames: list[np.ndarray], cfg: MaskConfig) -> Callable[[], None]:
    """The per-frame check over all frames: the tracker's update on a running
    rope (background), the edge probe alone on photographs (on_frame)."""
    if cfg.refresh_mode == "background":
        tracker = RopeMaskTracker(cfg)
        tracker.update(frames[0])

        def update() -> None:
            tracker.wait_idle()
            for image in frames:
                tracker.update(image)

        return update
    probe = EdgeProbe(frames[0].shape, "horizontal", cfg.downscale)
    mask = grabcut_rope_mask(frames[0], "horizontal", cfg.downscale).mask
    reference = probe.reference(frames[0], mask)

    def check() -> None:
        for image in frames:
            if reference is not None:
                probe.shift_px(image, reference)

    return check


def measure(
    cfg: MaskConfig, frames: list[np.ndarray], engine: Any, tile: TileShape, rounds: int
) -> dict[str, Any]:
    batches = frame_batches(frames, cfg, tile)
    cases: dict[str, Callable[[], Any]] = {
        "check": checker(frames, cfg),
        "refresh": partial(refresh_all, frames, cfg, tile),
        "engine": lambda: [engine.infer(b) for b in batches],
    }
    timings = interleave(cases, rounds)
    per_frame = {k: [v / len(frames) for v in t] for k, t in timings.wall.items()}
    if cfg.refresh_every == 1:
        rate: dict[str, Any] = {"frames": len(frames), "refreshes": len(frames)}
    else:
        rate = tracked_refresh_rate(frames, cfg)
    rate["rate"] = rate["refreshes"] / len(frames)
    return {"mask": cfg.model_dump(), "per_frame": per_frame, "refresh_rate": rate}


def share(numerator: list[float], engine: list[float], weight: float = 1.0) -> float:
    return median([weight * a / b for a, b in zip(numerator, engine, strict=True)])


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    tile = tile_hw(model.tile)
    engine_cfg = EngineConfig(model=model.onnx, threads=args.threads)
    engine = load_engine(engine_cfg, tile)
    count, rounds = pick(args, (3, 1), (12, 2), (40, 4))
    photos = real_photos(args.photos, count)
    replay = load_inspect_config(SOURCES["replay"]).mask
    every = replay.model_copy(update={"refresh_every": 1, "refresh_mode": "background"})
    groups = {
        "synthetic line (tracker)": (
            load_inspect_config(SOURCES["synthetic"]).mask,
            synthetic_frames(count),
        ),
        f"real photographs (shipped: {replay.refresh_mode})": (replay, photos),
        "real photographs (GrabCut every frame)": (every, photos),
    }
    table = Table(
        "Mask work per frame against frame time (ms, median of interleaved rounds)",
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
    for name, (cfg, frames) in groups.items():
        if not frames:
            continue
        result = measure(cfg, [f for _, f in frames], engine, tile, rounds)
        pf = result["per_frame"]
        checked = cfg.refresh_every > 1
        rate = result["refresh_rate"]["rate"]
        check = share(pf["check"], pf["engine"]) if checked else 0.0
        refreshing = share(pf["refresh"], pf["engine"], rate)
        table.add(
            name,
            len(frames),
            cfg.downscale,
            1e3 * median(pf["engine"]),
            1e3 * median(pf["check"]) if checked else "-",
            1e3 * median(pf["refresh"]),
            rate,
            check,
            refreshing,
            check + refreshing,
        )
        if cfg is not every:  # the per-frame row is the comparison
            label = f"mask share of frame time, {name}"
            targets.append(Target(label, check + refreshing, TARGET_SHARE, "lower"))
        extra[name] = result
    tables = [table]
    if photos:
        truth = defect_masks(args.photos, [name for name, _ in photos])
        agreement, extra["on_frame_agreement"] = agreement_table(
            photos, truth, replay, tile
        )
        tables.append(downscale_table(photos, truth, replay, tile, rounds))
        tables.append(agreement)
    engine.close()
    report("mask_cost", args, model, tables, targets, started, extra)


if __name__ == "__main__":
    main()
