"""`rope-inspect export`: a trained checkpoint to an ONNX engine file with its sidecar.

The exporter itself is `rope_inspect.model.export`.
"""

from __future__ import annotations

import argparse

from rope_inspect.model.export import export_onnx
from rope_inspect.vision.tile_shape import describe


def export_command(args: argparse.Namespace) -> int:
    """Export `--run` (run folder or .pt) to `--out` with `--opset`; print the check."""
    tile = args.tile
    if args.tile_height is not None:
        tile = (args.tile_height, args.tile or args.tile_height)
    sidecar = export_onnx(args.run, args.out, opset=args.opset, tile=tile)
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
