"""`rope-inspect train` and `rope-inspect eval`: the command-line side of training.

`train` reads a recipe from configs/train/, applies `--set key=value` overrides and
trains into a run folder (default runs/<name>); `eval` evaluates a run folder or a
checkpoint on the test images of its dataset and writes the report into <run>/eval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rope_inspect.errors import ConfigError, DataError
from rope_inspect.log import get_logger

log = get_logger(__name__)


def train_command(args: argparse.Namespace) -> int:
    """Train a model from a recipe; print the run metrics as JSON."""
    from rope_inspect.training.config import load_train_config
    from rope_inspect.training.loop import Trainer

    cfg = load_train_config(args.config, list(args.set or []))
    if not Path(cfg.data.root).is_dir():
        raise DataError(
            f"dataset folder {cfg.data.root} does not exist",
            f"set data.root in {args.config}, or pass --set data.root=<folder> "
            "(an MVTec-layout folder: train/good, validation/good, test/)",
        )
    run_dir = args.out or Path("runs") / cfg.name
    if (run_dir / "last.pt").exists() and not args.resume:
        raise ConfigError(
            f"run folder {run_dir} already holds a checkpoint",
            "pass --resume to continue it, or --out for a new run folder",
        )
    trainer = Trainer(cfg, run_dir)
    if args.resume:
        trainer.resume()
    log.info(
        "train_start",
        run=str(run_dir),
        steps=cfg.optim.steps,
        start_step=trainer.step,
        parameters=trainer.model.parameter_count(),
    )
    metrics = trainer.run()
    summary = {
        k: v for k, v in metrics.items() if k not in ("loss_curve", "validation_loss")
    }
    print(json.dumps(summary, indent=2))
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """Evaluate a run folder or checkpoint; print the overall metrics as JSON."""
    from rope_inspect.training.checkpoint import read_checkpoint, resolve_checkpoint
    from rope_inspect.training.config import config_from_dict
    from rope_inspect.training.evaluate import evaluate_checkpoint

    run = Path(args.run)
    which = "last"
    if run.is_dir() and (run / "last.pt").is_file():
        stored = config_from_dict(read_checkpoint(run / "last.pt")["train_config"])
        which = stored.eval.checkpoint
    checkpoint = resolve_checkpoint(run, which)
    out = args.out or checkpoint.parent / "eval"
    report = evaluate_checkpoint(
        checkpoint,
        args.data,
        out,
        overlays=args.overlays,
        tile_across=getattr(args, "tile_across", None),
        tile_along=getattr(args, "tile_along", None),
    )
    print(json.dumps({"out": str(out), **report["metrics"]}, indent=2))
    return 0
