"""Render the demo model's training set: the project's own synthetic rope, MVTec layout.

    python -m rope_inspect.training.render_synthetic --out runs/synthetic-rope

The frames come from the synthetic line's renderer (`rope_inspect.acquisition`), at
the demo camera's size and scale, so `configs/train/synthetic-demo.yaml` trains a model
for `configs/demo.yaml` from data that carries no licence restrictions. The folder is
reproducible from the seed and is not committed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rope_inspect.acquisition.synthetic_dataset import render_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/synthetic-rope"))
    parser.add_argument("--train", type=int, default=200, help="defect-free images")
    parser.add_argument("--test-per-type", type=int, default=10)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--px-per-mm", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = render_dataset(
        args.out,
        n_train=args.train,
        n_test_per_type=args.test_per_type,
        width=args.width,
        height=args.height,
        seed=args.seed,
        px_per_mm=args.px_per_mm,
    )
    print(json.dumps({"root": str(summary.root), "counts": summary.counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
