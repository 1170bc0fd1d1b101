"""The `rope-inspect` command line: one subcommand per job.

Each subcommand lives in the module of its part (`training.commands`,
`service.commands`, ...) and is imported only when used, so `rope-inspect run` does
not import torch.
A `RopeInspectError` is printed with its hint and exits non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rope_inspect import __version__
from rope_inspect.errors import RopeInspectError
from rope_inspect.log import configure_logging

# subcommand -> "module:function"; the function takes the parsed args, returns the
# exit code
COMMANDS: dict[str, str] = {
    "run": "rope_inspect.service.commands:run_command",
    "validate-config": "rope_inspect.service.commands:validate_config_command",
    "train": "rope_inspect.training.commands:train_command",
    "eval": "rope_inspect.training.commands:eval_command",
    "export": "rope_inspect.model.commands:export_command",
    "calibrate": "rope_inspect.engine.calibrate:calibrate_command",
    "build-engine": "rope_inspect.engine.build:build_engine_command",
    "review": "rope_inspect.review.commands:review_command",
}


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (refuses nan, inf, 0 and negatives)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
    return value


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the inspection daemon")
    p.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    p.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop once N frames have been inspected (frames skipped for image "
        "quality or left uninspected do not count)",
    )
    p.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds",
    )
    p.add_argument(
        "--report", type=Path, default=None, help="write the summary JSON here"
    )
    p.add_argument("--no-status", action="store_true", help="no live status line")

    p = sub.add_parser(
        "validate-config",
        help="check a daemon config file as `run` would at start (not the camera)",
    )
    p.add_argument("config", type=Path)
    p.add_argument(
        "--syntax-only",
        action="store_true",
        help="check the file alone: no paths, engine, calibration or ports (a "
        "config meant for another machine)",
    )


def _add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the anomaly model")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<name>)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. model.aspp=false",
    )
    _add_eval(sub)
    _add_export(sub)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model on a test set")
    p.add_argument("--run", type=Path, required=True, help="run folder or checkpoint")
    p.add_argument(
        "--data", type=Path, default=None, help="dataset root (default: config)"
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--overlays", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--tile-across",
        type=positive_int,
        default=None,
        help="inference tile side across the rope in px (default: the recipe's "
        "eval.tile_across, else square tiles)",
    )
    p.add_argument(
        "--tile-along",
        type=positive_int,
        default=None,
        help="inference tile side along the rope in px (default: the recipe's "
        "eval.tile_along, else data.tile); with --tile-across the daemon's layout",
    )


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX with its sidecar")
    p.add_argument("--run", type=Path, required=True, help="run folder or checkpoint")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument(
        "--tile",
        type=positive_int,
        default=None,
        help="tile width in px (default: the training tile); also the height "
        "unless --tile-height is given",
    )
    p.add_argument(
        "--tile-height",
        type=positive_int,
        default=None,
        help="tile height in px for non-square tiles: the tiling config's tile_across "
        "for a horizontal rope",
    )


def _add_engine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="set thresholds and scale for a line")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--good", type=Path, required=True, help="defect-free images of the line"
    )
    p.add_argument("--defects", type=Path, default=None, help="images with defects")
    p.add_argument("--false-rejects-per-km", type=float, default=1.0)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="calibration file to write (default: the one the config reads)",
    )
    p.add_argument(
        "--allow-extrapolation",
        action="store_true",
        help="with too few good images, fit a tail model to their top scores",
    )

    p = sub.add_parser(
        "build-engine", help="build a TensorRT plan (or optimise for ORT)"
    )
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--backend", choices=["tensorrt", "onnxruntime"], default="tensorrt")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--opt-batch", type=int, default=None)
    p.add_argument("--workspace", type=int, default=1024, help="MiB")
    p.add_argument("--out", type=Path, default=Path("engines"))
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="largest anomaly map difference parity accepts",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="calibration file whose thresholds parity decides at",
    )
    p.add_argument(
        "--parity-data",
        type=Path,
        default=None,
        help="rope photographs for parity tiles (default: found, else synthetic)",
    )


def _add_review(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="QA review page over a defect store")
    p.add_argument("--store", type=Path, default=Path("var/store"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", default=None, help="access token (or ROPE_INSPECT_TOKEN)")
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="calibration file: threshold for the score histogram and masks",
    )
    rsub = p.add_subparsers(dest="review_action")
    e = rsub.add_parser("export", help="write verdicts as an MVTec-layout dataset")
    e.add_argument("--verdict", choices=["false-alarm", "defect", "all"], default="all")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument(
        "--size", type=int, default=256, help="side of the square images (px)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rope-inspect",
        description="Inspection daemon for fibre-rope production lines.",
    )
    parser.add_argument(
        "--version", action="version", version=f"rope-inspect {__version__}"
    )
    parser.add_argument(
        "--log-format", choices=["auto", "console", "json"], default=None
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=None
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_model(sub)
    _add_engine(sub)
    _add_review(sub)
    return parser


def _resolve(command: str) -> Callable[[argparse.Namespace], int]:
    module_name, func_name = COMMANDS[command].split(":")
    module = importlib.import_module(module_name)
    func: Callable[[argparse.Namespace], int] = getattr(module, func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format or "auto", args.log_level or "info")
    try:
        return _resolve(args.command)(args)
    except RopeInspectError as exc:
        print(f"rope-inspect {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"rope-inspect {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
