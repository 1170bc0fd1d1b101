"""`rope-inspect export`: a trained checkpoint to an ONNX engine file with its sidecar.

The exporter itself is `rope_inspect.model.export`.
"""

from __future__ import annotations

import argparse

from rope_inspect.model.export import export_onnx


def export_command(args: argparse.Namespace) -> int:
    """Export `--run` (run folder or .pt) to `--out` with `--opset`; print the check."""
    sidecar = export_onnx(args.run, args.out, opset=args.opset)
    parity = (sidecar.model_extra or {}).get("parity", {})
    print(
        f"wrote {args.out} (tile {sidecar.tile}, opset {sidecar.opset}, "
        f"sha256 {sidecar.engine_sha256[:12]}); ONNX Runtime vs torch on batches "
        f"{parity.get('batches')}: anomaly map max |diff| "
        f"{parity.get('map_max_abs_diff', float('nan')):.2e}, score max |diff| "
        f"{parity.get('score_max_abs_diff', float('nan')):.2e} "
        f"(tolerance {parity.get('tolerance')})"
    )
    return 0
