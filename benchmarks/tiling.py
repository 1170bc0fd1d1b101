"""Tiling: tiles inferred per frame against the tiles the rope actually covers.

For every real photograph (and frames of the synthetic line) the daemon's own path
gives the rope mask (GrabCut), the envelope (mask filled and widened by the margin
where defects stick out) and the tile grid. The tiles inferred are compared with
what the envelope is worth: its area in tiles (no grid can do with less) and the
smallest non-overlapping cover (one column of tiles per tile width of the envelope,
as many rows as its height there needs). The rope mask itself, and the whole frame,
are shown for scale.

Then tile size and overlap trade-offs: tiles per frame, envelope area ratio and
engine time per frame, interleaved across settings on the same frames (each tile
size needs its own engine file: exported once from the checkpoint). Detection
quality per setting (image AUROC on the photographs' dev slice) needs a trained
model (`--model` with its `.pt`); with the untrained stand-in it is left out.

Target (issue 7): tiles inferred <= 1.3 x the tiles the envelope covers.

    python benchmarks/tiling.py [--quick] [--model engines/x.onnx]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bench_inputs import bench_model, export_for_tile, real_photos, synthetic_frames
from harness import (
    SCRATCH,
    Table,
    Target,
    interleave,
    machine,
    make_parser,
    median,
    pick,
    report,
)

from rope_inspect.config import EngineConfig, TilingConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tiling import RopeTiler, TileGrid, tile_grid

TARGET_RATIO = 1.3
MARGIN_PX = 60
OVERLAP = 16
MIN_FRACTION = 0.02


def min_cover(envelope: np.ndarray, tile: int) -> int:
    """Tiles of the smallest non-overlapping cover, column by column (horizontal)."""
    columns = np.flatnonzero(envelope.any(axis=0))
    if columns.size == 0:
        return 0
    count = 0
    for x in range(int(columns[0]), int(columns[-1]) + 1, tile):
        rows = np.flatnonzero(envelope[:, x : x + tile].any(axis=1))
        if rows.size:
            count += math.ceil((int(rows[-1]) - int(rows[0]) + 1) / tile)
    return count


def rope_of(frames: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Mask and envelope of each frame, as the daemon computes them."""
    out = []
    for name, image in frames:
        mask = grabcut_rope_mask(image).mask
        out.append(
            {
                "name": name,
                "image": image,
                "mask": mask,
                "envelope": rope_envelope(mask, MARGIN_PX),
            }
        )
    return out


def coverage_row(group: str, ropes: list[dict[str, Any]], tile: int) -> dict[str, Any]:
    """Tiles inferred per frame against what the rope and envelope are worth."""
    grids = [tile_grid(r["envelope"], tile, OVERLAP, MIN_FRACTION) for r in ropes]
    shape = ropes[0]["image"].shape
    count = [g.count for g in grids]
    cover = [min_cover(r["envelope"], tile) for r in ropes]
    return {
        "frames": group,
        "n": len(ropes),
        "tiles/frame": float(np.mean(count)),
        "envelope tiles": float(np.mean([g.envelope_tiles for g in grids])),
        "min cover": float(np.mean(cover)),
        "mask tiles": float(np.mean([np.count_nonzero(r["mask"]) for r in ropes]))
        / tile**2,
        "whole-frame grid": len(
            tile_grid(np.ones(shape[:2], bool), tile, OVERLAP, 0).windows
        ),
        "inferred / envelope": median([g.tiles_per_covered() for g in grids]),
        "inferred / min cover": median(
            [c / m for c, m in zip(count, cover, strict=True) if m]
        ),
        "inferred / mask": median(
            [g.tiles_per_covered(r["mask"]) for g, r in zip(grids, ropes, strict=True)]
        ),
        "worst inferred / envelope": max(g.tiles_per_covered() for g in grids),
    }


def tradeoff_cases(
    model: Any,
    ropes: list[dict[str, Any]],
    settings: list[tuple[int, int]],
    threads: int,
) -> tuple[dict[str, Any], dict[str, list[TileGrid]], list[Any]]:
    """One case per (tile, overlap): infer the tiles of every frame once."""
    cases: dict[str, Any] = {}
    grids: dict[str, list[TileGrid]] = {}
    engines: dict[int, Any] = {}
    for tile, overlap in settings:
        if tile not in engines:
            path = (
                model.onnx
                if tile == model.tile
                else export_for_tile(
                    model.checkpoint, tile, SCRATCH / f"{model.onnx.stem}-t{tile}.onnx"
                )
            )
            cfg = EngineConfig(model=path, threads=threads)
            engines[tile] = load_engine(cfg, tile)
        tiler = RopeTiler(
            TilingConfig(tile=tile, overlap=overlap, min_rope_fraction=MIN_FRACTION)
        )
        batches = []
        key = f"tile {tile}, overlap {overlap}"
        grids[key] = []
        for rope in ropes:
            grid = tiler.grid_for(rope["envelope"])
            grids[key].append(grid)
            batches.append(tiler.cut(rope["image"], grid).copy())
        engine = engines[tile]
        cases[key] = lambda b=batches, e=engine: [e.infer(t) for t in b]
    return cases, grids, list(engines.values())


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    tile = model.tile
    groups = {
        "real photographs": real_photos(args.photos),
        "synthetic line": synthetic_frames(pick(args, 3, 8, 24)),
    }
    ropes = {name: rope_of(frames) for name, frames in groups.items() if frames}

    coverage = Table(
        f"Tiles per frame ({tile} px, overlap {OVERLAP}, margin {MARGIN_PX} px)",
        [
            "frames",
            "n",
            "tiles/frame",
            "envelope tiles",
            "min cover",
            "mask tiles",
            "whole-frame grid",
            "inferred / envelope",
            "inferred / min cover",
            "inferred / mask",
            "worst inferred / envelope",
        ],
    )
    targets = []
    for name, rope in ropes.items():
        row = coverage_row(name, rope, tile)
        coverage.add(*row.values())
        targets.append(
            Target(
                f"tiles inferred / envelope tiles, {name}",
                row["inferred / envelope"],
                TARGET_RATIO,
                "lower",
            )
        )
        targets.append(
            Target(
                f"tiles inferred / min cover, {name}",
                row["inferred / min cover"],
                TARGET_RATIO,
                "lower",
            )
        )

    sizes = (
        [tile]
        if model.checkpoint is None
        else sorted(pick(args, {tile}, {96, tile, 192}, {64, 96, tile, 192}))
    )
    settings = [(t, o) for t in sizes for o in (0, OVERLAP, 32) if o < t // 2]
    sample = next(iter(ropes.values()))[: pick(args, 2, 3, 6)]
    cases, grids, engines = tradeoff_cases(model, sample, settings, args.threads)
    for case in cases.values():
        case()
    timings = interleave(cases, pick(args, 1, 2, 4))
    trade = Table(
        f"Tile size and overlap ({len(sample)} frames of {next(iter(ropes))})",
        [
            "setting",
            "tiles/frame",
            "inferred / envelope",
            "ms per frame",
            "CPU ms per frame",
        ],
    )
    for key, frame_grids in grids.items():
        trade.add(
            key,
            float(np.mean([g.count for g in frame_grids])),
            median([g.tiles_per_covered() for g in frame_grids]),
            1e3 * median(timings.wall[key]) / len(sample),
            1e3 * median(timings.cpu[key]) / len(sample),
        )
    for engine in engines:
        engine.close()
    note = (
        "" if model.trained else "; detection quality per setting needs a trained model"
    )
    extra = {"note": "tile-size trade-off" + note}
    report("tiling", args, model, [coverage, trade], targets, started, extra)


if __name__ == "__main__":
    main()
