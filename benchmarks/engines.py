"""Engines: ONNX Runtime against torch eager on the same tiles, and ORT's own options.

The tiles are one frame's worth, cut by the daemon's own tiler from a real photograph
(or from the synthetic line when the photographs are absent). Every case runs the
same tiles once per round, batch 1 (one call per tile) or batched (one call per
frame), interleaved and rotated round by round; ratios are taken within a round.

Cases: the project's ONNX Runtime engine (io-binding, all graph optimisations) and
torch engine (`TileModel` under inference_mode, the checkpoint beside the ONNX
file); plain ONNX Runtime sessions at each graph optimisation level, with 1 and 2
intra-op threads, with idle threads allowed to spin, and loaded from a saved
optimised model (where session creation time is what changes). The project engine
is also run with smaller `engine.max_batch` values (it splits a frame's batch into
chunks of that size): on a CPU a small batch keeps the activations in cache.

Target (issue 7, CPU): ONNX Runtime >= 2 x torch eager, per frame.

    python benchmarks/engines.py [--quick] [--model engines/x.onnx]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from bench_inputs import (
    bench_model,
    real_photos,
    shipped_tiling,
    synthetic_frames,
    tiling_for,
)
from harness import (
    SCRATCH,
    Table,
    Target,
    interleave,
    machine,
    make_parser,
    median,
    pick,
    ratios,
    report,
)

from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.vision.tile_shape import describe

TARGET_SPEEDUP = 2.0
LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def frame_tiles(photos: Path, tile: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The tiles the daemon would infer for one frame (the engine's tile shape with
    the shipped overlap), and where they came from."""
    from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
    from rope_inspect.vision.tiling import RopeTiler

    frames = real_photos(photos, 1) or synthetic_frames(1)
    name, image = frames[0]
    origin = name if name.startswith("synthetic") else f"real photograph {name}"
    envelope = rope_envelope(grabcut_rope_mask(image).mask, 60)
    tiler = RopeTiler(tiling_for(tile, shipped_tiling().overlap))
    return tiler.cut(image, tiler.grid_for(envelope)).copy(), origin


def ort_session(
    path: Path, level: str = "all", threads: int = 0, spin: bool = False, **extra: Any
) -> tuple[Any, float]:
    """A plain session with the given options, and the seconds it took to create."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if spin else "0"
    )
    if "save_to" in extra:
        options.optimized_model_filepath = str(extra["save_to"])
    started = time.perf_counter()
    session = ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    return session, time.perf_counter() - started


def runner(infer: Callable[[np.ndarray], Any], tiles: np.ndarray, batched: bool):
    """One frame: all tiles in one call, or one call per tile."""
    singles = [np.ascontiguousarray(tiles[i : i + 1]) for i in range(len(tiles))]

    def run() -> None:
        if batched:
            infer(tiles)
        else:
            for single in singles:
                infer(single)

    return run


def build_cases(
    model: Any, tiles: np.ndarray, threads: int, quick: bool, smoke: bool
) -> tuple[dict[str, Callable[[], None]], dict[str, float], list[Any]]:
    cfg = EngineConfig(model=model.onnx, threads=threads)
    engines = [load_engine(cfg, model.tile)]
    cases: dict[str, Callable[[], None]] = {}
    created: dict[str, float] = {}
    for batched in (True, False):
        mode = "batched" if batched else "batch 1"
        cases[f"ORT engine, {mode}"] = runner(engines[0].infer, tiles, batched)
    if model.checkpoint is not None:
        torch_cfg = cfg.model_copy(update={"backend": "torch"})
        engines.append(load_engine(torch_cfg, model.tile))
        for batched in (True, False):
            mode = "batched" if batched else "batch 1"
            cases[f"torch eager, {mode}"] = runner(engines[1].infer, tiles, batched)

    sizes = (1, 2) if smoke else (1, 2, 4) if quick else (1, 2, 4, 8)
    for size in sizes:
        sized = load_engine(cfg.model_copy(update={"max_batch": size}), model.tile)
        engines.append(sized)
        cases[f"ORT engine, engine.max_batch {size}"] = runner(sized.infer, tiles, True)

    def plain(name: str, session: Any, seconds: float) -> None:
        created[name] = seconds
        cases[name] = runner(lambda t: session.run(None, {"tiles": t}), tiles, True)

    saved = SCRATCH / f"{model.onnx.stem}.optimised.onnx"
    variants = ["all"] if quick else ["disable", "basic", "extended", "all"]
    for level in variants:
        plain(f"ORT run(), opt {level}", *ort_session(model.onnx, level, threads))
    if not quick:
        for count in (1, 2):
            name = f"ORT run(), opt all, {count} thread(s)"
            plain(name, *ort_session(model.onnx, "all", count))
        plain("ORT run(), opt all, spinning", *ort_session(model.onnx, spin=True))
        ort_session(model.onnx, "all", threads, save_to=saved)
        plain("ORT run(), saved optimised", *ort_session(saved, "disable", threads))
    return cases, created, engines


def _speedup(series: dict[str, list[float]], reference: str | None, name: str) -> float:
    """Median over rounds of reference time / case time (> 1: faster)."""
    if reference is None:
        return float("nan")
    return median(ratios(series[reference], series[name]))


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    tiles, origin = frame_tiles(args.photos, model.tile)
    if args.quick or args.smoke:
        tiles = np.ascontiguousarray(tiles[: pick(args, 2, 4, None)])
    cases, created, engines = build_cases(
        model, tiles, args.threads, args.quick or args.smoke, args.smoke
    )
    for run in cases.values():  # warm-up: first calls allocate and pick kernels
        run()
    timings = interleave(cases, pick(args, 1, 3, 5))
    count = len(tiles)

    wall, cpu = timings.wall, timings.cpu
    reference = "torch eager, batched" if "torch eager, batched" in wall else None
    table = Table(
        f"Engines on {count} tiles of {describe(model.tile)} ({origin}); median of "
        "rounds",
        [
            "case",
            "ms per frame",
            "ms per tile",
            "best ms per tile",
            "CPU ms per tile",
            "x torch batched (wall)",
            "x torch batched (CPU)",
            "session creation ms",
        ],
    )
    for name in wall:
        table.add(
            name,
            1e3 * median(wall[name]),
            1e3 * median(wall[name]) / count,
            1e3 * min(wall[name]) / count,
            1e3 * median(cpu[name]) / count,
            _speedup(wall, reference, name),
            _speedup(cpu, reference, name),
            1e3 * created[name] if name in created else "",
        )
    targets = []
    if reference is not None:
        targets = [
            Target(
                f"ORT / torch eager speed, {mode} ({clock})",
                _speedup(series, f"torch eager, {mode}", f"ORT engine, {mode}"),
                TARGET_SPEEDUP,
                "higher",
            )
            for mode in ("batched", "batch 1")
            for clock, series in (("wall", wall), ("CPU", cpu))
        ]
    for engine in engines:
        engine.close()
    extra = {
        "wall_s": wall,
        "cpu_s": cpu,
        "tiles": count,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
    }
    report("engines", args, model, [table], targets, started, extra)


if __name__ == "__main__":
    main()
