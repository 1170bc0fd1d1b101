"""`rope-inspect export`: a trained checkpoint to an ONNX engine file with its sidecar.

The exporter itself is `rope_inspect.model.export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rope_inspect.model.export import DEFAULT_TILE, export_onnx
from rope_inspect.vision.tile_shape import TileShape, describe


def training_tile(run: Path) -> int:
    """The width of the tiles the checkpoint in `run` was trained on (else the
    default)."""
    from rope_inspect.model.export_source import training_tile_shape
    from rope_inspect.training.checkpoint import read_checkpoint, resolve_checkpoint

    payload = read_checkpoint(resolve_checkpoint(Path(run), "best"))
    shape = training_tile_shape((payload.get("train_config") or {}).get("data") or {})
    return shape[1] if shape else DEFAULT_TILE


def requested_tile(args: argparse.Namespace) -> int | TileShape | None:
    """`--tile` (width; also the height unless `--tile-height`) and `--tile-height`;
    a width left out is the training tile, as `--tile` says."""
    if args.tile_height is None:
        return int(args.tile) if args.tile is not None else None
    width = args.tile if args.tile is not None else training_tile(args.run)
    return (int(args.tile_height), int(width))


def export_command(args: argparse.Namespace) -> int:
    """Export `--run` (run folder or .pt) to `--out` with `--opset`; print the check."""
    sidecar = export_onnx(
        args.run, args.out, opset=args.opset, tile=requested_tile(args)
    )
    parity = (sidecar.model_extra or {}).get("parity", {})
    print(
        f"wrote {args.out} (tile {describe(sidecar.tile_shape)}, opset "
        f"{sidecar.opset}, "
        f"sha256 {sidecar.engine_sha256[:12]}); ONNX Runtime vs torch on batches "
        f"{parity.get('batches')}: anomaly map max |diff| "
        f"{parity.get('map_max_abs_diff', float('nan')):.2e}, score max |diff| "
        f"{parity.get('score_max_abs_diff', float('nan')):.2e} "
        f"(tolerance {parity.get('tolerance')})"
    )
    return 0
