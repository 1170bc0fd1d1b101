"""`rope-inspect calibrate`: thresholds and image scale of one line, from its images.

Runs the daemon's config and engine over defect-free images of the line
(`calibration_frames`), then:

- sets the image threshold for the asked false-alarm rate (`thresholds`: frames per km,
  allowed per-frame probability, empirical bound or, only when asked, a tail fit);
- sets the pixel threshold to the same value: the frame score is the maximum of the
  smoothed map inside the envelope, so a frame below it holds no defect pixel, and a
  reject (a defect region) is never more frequent than the frame alarms counted here;
- with `--defects`, reports recall at the threshold and the margin to the weakest
  defect;
- measures mm per pixel: the rope's known diameter over its median width in the strict
  GrabCut mask;

and writes the calibration file (by default the one the config reads,
`calibration/<line>.yaml` in the shipped configs) saying what it measured, from what
data, when, and with which engine. The daemon reads that file; changing a threshold
needs no rebuild.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.decision.calibration import Calibration, load_calibration
from rope_inspect.engine.calibration_frames import (
    MIN_ROPE_WIDTH_PX,
    FrameInspector,
    FrameResult,
    list_images,
)
from rope_inspect.engine.loader import load_engine
from rope_inspect.engine.sidecar import check_rope_axis
from rope_inspect.engine.thresholds import (
    ThresholdChoice,
    choose_threshold,
    false_alarm_target,
)
from rope_inspect.errors import ConfigError, DataError
from rope_inspect.log import get_logger
from rope_inspect.storage.output_paths import check_output_file

log = get_logger(__name__)

SCALE_CHANGE_WARN = 0.2  # warn when mm per pixel moves this much since last time


def _say(text: str) -> None:
    print(f"calibrate: {text}", flush=True)


def _frame_rate(cfg: InspectConfig) -> float | None:
    source: Any = cfg.source
    return getattr(source, "fps", None) or getattr(source, "frame_rate", None)


def measure_scale(
    inspector: FrameInspector, results: list[FrameResult], cfg: InspectConfig
) -> tuple[float, float]:
    """(mm per pixel, median rope width px); refuse a folder where no rope is found."""
    found = [r.path for r in results if r.fallback is None]
    widths = inspector.rope_widths(found) if found else []
    if not widths:
        reasons = sorted({r.fallback for r in results if r.fallback}) or ["full size"]
        raise DataError(
            f"the rope mask found no rope in any of the {len(results)} good images "
            f"(GrabCut fell back: {', '.join(reasons)})",
            "check that --good holds images of this line's rope, with background "
            f"on both sides, and that line.rope_axis ({cfg.line.rope_axis}) is right",
        )
    width = float(np.median(widths))
    across = _frame_extent(results[0].path, cfg, along=False)
    if not MIN_ROPE_WIDTH_PX <= width <= 0.9 * across:
        raise DataError(
            f"implausible rope width {width:.0f} px in frames {across} px across",
            "the folder may show another rope or no rope; check --good and "
            f"line.rope_axis ({cfg.line.rope_axis})",
        )
    if len(found) < len(results):
        log.warning("rope_not_found", images=len(results) - len(found), of=len(results))
    return cfg.line.rope_diameter_mm / width, width


def _frame_extent(path: Path, cfg: InspectConfig, along: bool) -> int:
    from rope_inspect.engine.calibration_frames import read_rgb

    height, width = read_rgb(path).shape[:2]
    horizontal = cfg.line.rope_axis == "horizontal"
    return width if horizontal == along else height


def _check_scale_change(out: Path, mm_per_px: float) -> None:
    if not out.exists():
        return
    try:
        previous = load_calibration(out).mm_per_px
    except ConfigError:
        return
    change = abs(mm_per_px - previous) / previous
    if change > SCALE_CHANGE_WARN:
        _say(
            f"WARNING: mm per pixel {mm_per_px:.4f} differs by {change:.0%} from "
            f"{out} ({previous:.4f}): camera moved, or another rope diameter?"
        )


def _defect_report(
    inspector: FrameInspector, folder: Path, threshold: float
) -> tuple[int, float, float]:
    """(count, recall, margin) of the defect images at `threshold`."""
    paths = list_images(folder, skip_good=True)
    if not paths:
        raise DataError(
            f"no defect images in {folder}", "pass a folder of defect images"
        )
    results = list(inspector.run(paths, "defects"))
    scores = np.array([r.score for r in results])
    recall = float(np.mean(scores >= threshold))
    margin = float(scores.min() - threshold)
    by_type: dict[str, list[float]] = {}
    for result in results:
        by_type.setdefault(result.path.parent.name, []).append(result.score)
    for kind, values in sorted(by_type.items()):
        caught = sum(v >= threshold for v in values)
        _say(f"  {kind}: {caught}/{len(values)} at or above the threshold")
    return len(results), recall, margin


def _source_text(
    args: argparse.Namespace, count: int, choice: ThresholdChoice, derivation: str
) -> str:
    return (
        f"{count} good images from {args.good}; image threshold {choice.method}: "
        f"{choice.description}; frames per km: {derivation}; pixel threshold = image "
        "threshold (the frame score is the smoothed map's maximum in the envelope)"
    )


def write_calibration(path: Path, calibration: Calibration) -> None:
    header = (
        f"# Calibration of line {calibration.line}, by rope-inspect calibrate.\n"
        "# The daemon reads this file at start; editing a threshold needs no rebuild.\n"
    )
    body = yaml.safe_dump(calibration.model_dump(mode="json"), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + body)
    tmp.replace(path)


def calibrate(args: argparse.Namespace, cfg: InspectConfig) -> Calibration:
    """Measure thresholds and scale; return the calibration (not yet written)."""
    good = list_images(Path(args.good))
    if not good:
        raise DataError(f"no images in {args.good}", "pass a folder of good images")
    engine = load_engine(cfg.engine, cfg.tile_shape)
    try:
        check_rope_axis(Path(cfg.engine.model), engine.sidecar, cfg.line.rope_axis)
        inspector = FrameInspector(cfg, engine)
        results = list(inspector.run(good, "good"))
        mm_per_px, width = measure_scale(inspector, results, cfg)
        fov_m = _frame_extent(good[0], cfg, along=True) * mm_per_px / 1000.0
        target = false_alarm_target(
            args.false_rejects_per_km, fov_m, _frame_rate(cfg), cfg.line.speed_m_per_s
        )
        scores = np.array([r.score for r in results])
        _say(f"good scores: median {np.median(scores):.4f}, max {scores.max():.4f}")
        _say(
            f"frames per km {target.derivation}; "
            f"allowed p {target.frame_probability:.3g}"
        )
        choice = choose_threshold(
            scores, target.frame_probability, args.allow_extrapolation
        )
        defects = (
            _defect_report(inspector, Path(args.defects), choice.threshold)
            if args.defects
            else (0, None, None)
        )
    finally:
        engine.close()
    return Calibration(
        line=cfg.line.name,
        pixel_threshold=choice.threshold,
        image_threshold=choice.threshold,
        mm_per_px=mm_per_px,
        engine_sha256=engine.sidecar.engine_sha256,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=_source_text(args, len(results), choice, target.derivation),
        good_images=len(results),
        target_false_rejects_per_km=args.false_rejects_per_km,
        margin_to_nearest_defect=defects[2],
        threshold_method=choice.method,
        frames_per_km=target.frames_per_km,
        false_alarm_per_frame=target.frame_probability,
        defect_images=defects[0],
        defect_recall=defects[1],
        rope_width_px=width,
        notes=f"engine {cfg.engine.model} ({cfg.engine.backend}); config {args.config}",
    )


def calibrate_command(args: argparse.Namespace) -> int:
    """Entry point of `rope-inspect calibrate`."""
    cfg = load_inspect_config(args.config)
    out = Path(args.out or cfg.calibration)
    check_output_file(out, "--out" if args.out else "calibration", "calibration.yaml")
    calibration = calibrate(args, cfg)
    _check_scale_change(out, calibration.mm_per_px)
    write_calibration(out, calibration)
    _say(
        f"threshold {calibration.image_threshold:.4f} "
        f"({calibration.threshold_method}), "
        f"{calibration.mm_per_px:.4f} mm/px (rope {calibration.rope_width_px:.0f} px)"
    )
    if calibration.defect_recall is not None:
        _say(
            f"defects: recall {calibration.defect_recall:.0%} of "
            f"{calibration.defect_images}, margin to the weakest "
            f"{calibration.margin_to_nearest_defect:+.4f}"
        )
    _say(f"wrote {out}")
    if cfg.calibration.resolve() != out.resolve():
        _say(f"note: {args.config} reads {cfg.calibration}, not {out}")
    return 0
