"""Tiling: tiles inferred per frame against the tiles the rope actually covers.

For every real photograph (and frames of the synthetic line) the daemon's own path
gives the rope mask (GrabCut), the envelope (mask filled and widened by the margin
where defects stick out) and the tile grid. The pixels inferred (tiles x tile area)
are compared with the envelope's area: no grid can infer less. The smallest
non-overlapping cover of square tiles and the rope mask itself are shown for scale.

Square tiles cannot reach the target on a band ~200 px high: 128 px squares need two
rows (256 px) for it. A tile as tall as the band (`tiling.tile_across`) covers it in
one row. Each layout is compared side by side: coverage on both sources, engine time
per frame (interleaved on the same frames; each tile shape has its own engine file,
exported once from the checkpoint) and, with a trained model (`--model` with its
`.pt` beside it), detection quality on the photographs through the daemon's path
(envelope grid, stitched map, decision smoothing): image AUROC, pixel AUROC and pixel
AP against the ground-truth masks.

Target (issue 7): pixels inferred <= 1.3 x the envelope's, with the shipped tiling
(`configs/mvtec3d-rope.yaml` for the photographs, `configs/demo.yaml` for the line).

    python benchmarks/tiling.py [--quick] [--model engines/mvtec3d-rope.onnx]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from bench_inputs import (
    bench_model,
    export_for_tile,
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
    report,
)

from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.training.metrics import detection_metrics
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tile_shape import describe
from rope_inspect.vision.tiling import RopeTiler, TileGrid, stitch

TARGET_RATIO = 1.3
MARGIN_PX = 60
MIN_FRACTION = 0.02
SMOOTHING_SIGMA = 2.0  # decision.smoothing_sigma_px of the shipped configs
SHIPPED = {"real photographs": "mvtec3d-rope", "synthetic line": "demo"}
# (height, width) and overlap of each layout compared
LAYOUTS = [
    ((128, 128), 16),
    ((128, 128), 0),
    ((96, 96), 0),
    ((224, 128), 16),
    ((224, 128), 0),
    ((224, 160), 16),
    ((224, 160), 0),
]


def layout_name(tile: tuple[int, int], overlap: int) -> str:
    return f"{describe(tile)}, overlap {overlap}"


def min_square_cover(envelope: np.ndarray, side: int) -> int:
    """Tiles of the smallest non-overlapping square cover, column by column."""
    columns = np.flatnonzero(envelope.any(axis=0))
    if columns.size == 0:
        return 0
    count = 0
    for x in range(int(columns[0]), int(columns[-1]) + 1, side):
        rows = np.flatnonzero(envelope[:, x : x + side].any(axis=1))
        if rows.size:
            count += math.ceil((int(rows[-1]) - int(rows[0]) + 1) / side)
    return count


def rope_of(frames: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Mask and envelope of each frame, as the daemon computes them."""
    out = []
    for name, image in frames:
        mask = grabcut_rope_mask(image).mask
        envelope = rope_envelope(mask, MARGIN_PX)
        out.append({"name": name, "image": image, "mask": mask, "envelope": envelope})
    return out


def grids_for(ropes: list[dict[str, Any]], tiling: Any) -> list[TileGrid]:
    tiler = RopeTiler(tiling)
    return [tiler.grid_for(rope["envelope"]) for rope in ropes]


def coverage_row(group: str, ropes: list[dict[str, Any]], tiling: Any) -> list[Any]:
    """Tiles and pixels inferred per frame against what the envelope is worth."""
    grids = grids_for(ropes, tiling)
    tile = tiling.shape("horizontal")
    square = min_square_cover
    return [
        group,
        layout_name(tile, tiling.overlap),
        float(np.mean([g.count for g in grids])),
        float(np.mean([g.envelope_tiles for g in grids])),
        median([g.tiles_per_covered() for g in grids]),
        max(g.tiles_per_covered() for g in grids),
        median(
            [
                g.count / square(r["envelope"], 128)
                for g, r in zip(grids, ropes, strict=True)
            ]
        ),
        median(
            [g.tiles_per_covered(r["mask"]) for g, r in zip(grids, ropes, strict=True)]
        ),
    ]


def truth_of(photos: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The ground-truth defect mask of a test photograph (all False for good)."""
    kind, file = name.split("/")
    path = photos.parent / "ground_truth" / kind / f"{Path(file).stem}_mask.png"
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return np.zeros(shape[:2], bool) if mask is None else mask > 0


def quality(
    engine: Any, tiling: Any, ropes: list[dict[str, Any]], photos: Path
) -> dict[str, float | None]:
    """Detection quality of one layout through the daemon's path."""
    tiler = RopeTiler(tiling)
    scores, maps, truths, labels = [], [], [], []
    for rope in ropes:
        grid = tiler.grid_for(rope["envelope"])
        maps_, _ = engine.infer(tiler.cut(rope["image"], grid))
        frame_map = stitch(maps_, grid, np.zeros(grid.shape, np.float32))
        smoothed = cv2.GaussianBlur(frame_map, (0, 0), SMOOTHING_SIGMA)
        smoothed *= rope["envelope"]
        truth = truth_of(photos, rope["name"], rope["image"].shape)
        scores.append(float(smoothed.max()))
        maps.append(smoothed)
        truths.append(truth)
        labels.append(bool(truth.any()))
    metrics = detection_metrics(np.array(scores), np.array(labels), maps, truths)
    return {k: metrics[k] for k in ("image_auroc", "pixel_auroc", "pixel_ap")}


def layout_engines(model: Any, threads: int, layouts: list[Any]) -> dict[Any, Any]:
    """One open engine per tile shape (exported from the checkpoint when needed)."""
    engines: dict[Any, Any] = {}
    for tile, _ in layouts:
        if tile in engines:
            continue
        path = model.onnx
        if tile != model.tile:
            name = f"{model.onnx.stem}-{tile[0]}x{tile[1]}.onnx"
            path = export_for_tile(model.checkpoint, tile, SCRATCH / name)
        engines[tile] = load_engine(EngineConfig(model=path, threads=threads), tile)
    return engines


def tradeoff(args: Any, model: Any, ropes: dict[str, list[dict[str, Any]]]) -> Table:
    """Each layout side by side: coverage, engine time and detection quality."""
    layouts = [(model.tile, 16)]
    if model.checkpoint is not None:
        layouts = pick(args, LAYOUTS[3:4], LAYOUTS, LAYOUTS)
    engines = layout_engines(model, args.threads, layouts)
    group = next(iter(ropes))
    sample = ropes[group][: pick(args, 1, 3, 6)]
    cases: dict[str, Any] = {}
    grids: dict[str, list[TileGrid]] = {}
    for tile, overlap in layouts:
        tiling = tiling_for(tile, overlap, min_rope_fraction=MIN_FRACTION)
        key = layout_name(tile, overlap)
        tiler = RopeTiler(tiling)
        grids[key], batches = [], []
        for rope in sample:  # cut right after grid_for: the tiler's buffer fits it
            grids[key].append(tiler.grid_for(rope["envelope"]))
            batches.append(tiler.cut(rope["image"], grids[key][-1]).copy())
        cases[key] = lambda b=batches, e=engines[tile]: [e.infer(t) for t in b]
    for case in cases.values():
        case()
    timings = interleave(cases, pick(args, 1, 2, 4))
    columns = ["layout", "tiles/frame", "pixels inferred / envelope", "ms per frame"]
    columns += ["CPU ms per frame", "image AUROC", "pixel AUROC", "pixel AP"]
    table = Table(
        f"Tile layouts ({len(sample)} frames of {group}; quality: all)", columns
    )
    graded = model.trained and group == "real photographs" and not args.smoke
    for tile, overlap in layouts:
        key = layout_name(tile, overlap)
        tiling = tiling_for(tile, overlap, min_rope_fraction=MIN_FRACTION)
        found = (
            quality(engines[tile], tiling, ropes[group], args.photos) if graded else {}
        )
        table.add(
            key,
            float(np.mean([g.count for g in grids[key]])),
            median([g.tiles_per_covered() for g in grids[key]]),
            1e3 * median(timings.wall[key]) / len(sample),
            1e3 * median(timings.cpu[key]) / len(sample),
            found.get("image_auroc"),
            found.get("pixel_auroc"),
            found.get("pixel_ap"),
        )
    for engine in engines.values():
        engine.close()
    return table


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    model = bench_model(args.model)
    groups = {
        "real photographs": real_photos(args.photos),
        "synthetic line": synthetic_frames(pick(args, 3, 8, 24)),
    }
    ropes = {name: rope_of(frames) for name, frames in groups.items() if frames}

    coverage = Table(
        f"Tiles per frame (margin {MARGIN_PX} px; shipped layout, then square tiles)",
        [
            "frames",
            "layout",
            "tiles/frame",
            "envelope tiles",
            "pixels inferred / envelope",
            "worst",
            "tiles / square 128 px cover",
            "pixels inferred / mask",
        ],
    )
    targets = []
    for name, rope in ropes.items():
        shipped = shipped_tiling(SHIPPED[name])
        row = coverage_row(name, rope, shipped)
        coverage.add(*row)
        coverage.add(*coverage_row(name, rope, tiling_for(128, 16)))
        targets.append(
            Target(
                f"pixels inferred / envelope, {name} ({row[1]})",
                row[4],
                TARGET_RATIO,
                "lower",
            )
        )
    trade = tradeoff(args, model, ropes)
    note = "" if model.trained else "; detection quality needs a trained model"
    extra = {"note": "tile layouts compared" + note}
    report("tiling", args, model, [coverage, trade], targets, started, extra)


if __name__ == "__main__":
    main()
