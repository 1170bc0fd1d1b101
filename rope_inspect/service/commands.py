"""`rope-inspect validate-config` and `rope-inspect run`: the daemon's command line.

`validate_config_command` checks a config file (and the calibration it names) and prints
a summary; errors come back as ConfigError with file:line, key, value and what is
allowed. `run_command` loads the config, sets up logging (CLI flags win), runs the
Daemon until SIGINT/SIGTERM/SIGHUP, `--max-frames` or `--duration`, then prints the
summary and writes it as JSON with `--report`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.decision.calibration import Calibration, load_calibration
from rope_inspect.log import configure_logging, get_logger

log = get_logger(__name__)


def _source_summary(cfg: InspectConfig) -> str:
    src = cfg.source
    if src.kind == "synthetic":
        return (
            f"synthetic rope {src.width}x{src.height} at {src.fps:g} fps, "
            f"{src.defects_per_m:g} defects/m, seed {src.seed}"
        )
    if src.kind == "replay":
        mode = "looping" if src.loop else "once"
        return f"replay of {src.path} at {src.fps:g} fps, {mode}"
    return f"GenICam camera {src.camera!r} through {src.cti}"


def _outputs_summary(outputs: list[Any]) -> str:
    parts = []
    for out in outputs:
        if out.kind == "modbus":
            where = f"{out.host}:{out.port}"
            parts.append(f"modbus {where} unit {out.unit} coil {out.coil}")
        elif out.kind == "camera_line":
            parts.append(f"camera line {out.line}/{out.user_output}")
        else:
            parts.append("log")
    return ", ".join(parts) or "none"


def config_summary(cfg: InspectConfig, calibration: Calibration | None) -> list[str]:
    """One line per part of the data flow, as the daemon will run it."""
    line = cfg.line
    if calibration is None:
        calib = f"{cfg.calibration} (not found)"
    else:
        calib = (
            f"{cfg.calibration}: pixel threshold {calibration.pixel_threshold:g}, "
            f"{calibration.mm_per_px:g} mm/px"
        )
    metrics = (
        f"http://{cfg.metrics.host}:{cfg.metrics.port}/metrics and /healthz"
        if cfg.metrics.enabled
        else "off"
    )
    return [
        f"line:        {line.name}, rope {line.rope_axis}, {line.speed_m_per_s:g} m/s, "
        f"encoder {line.encoder}",
        f"source:      {_source_summary(cfg)}",
        f"ring:        {cfg.ring.slots} slots (oldest dropped when full)",
        f"engine:      {cfg.engine.backend} {cfg.engine.model}, tile {cfg.tiling.tile} "
        f"overlap {cfg.tiling.overlap}",
        f"calibration: {calib}",
        f"reject:      {cfg.reject.actuator_distance_m:g} m to the actuator, outputs "
        f"{_outputs_summary(cfg.reject.outputs)}; fault outputs "
        f"{_outputs_summary(cfg.reject.fault_outputs)}",
        f"store:       {cfg.store.path}, at most {cfg.store.max_bytes / 1e6:g} MB",
        f"metrics:     {metrics}",
        f"logging:     {cfg.logging.format}, {cfg.logging.level}",
    ]


def missing_files(cfg: InspectConfig) -> list[str]:
    """Files the config names that do not exist on this machine (not an error here)."""
    named: list[tuple[str, Path]] = [
        ("engine.model", cfg.engine.model),
        ("calibration", cfg.calibration),
    ]
    if cfg.source.kind == "replay":
        named.append(("source.path", cfg.source.path))
    elif cfg.source.kind == "genicam":
        named.append(("source.cti", cfg.source.cti))
    return [
        f"{key} {path} does not exist here" for key, path in named if not path.exists()
    ]


def validate_config_command(args: argparse.Namespace) -> int:
    """Check a daemon config and its calibration; print OK and a summary."""
    cfg = load_inspect_config(args.config)
    calibration = None
    if cfg.calibration.exists():
        calibration = load_calibration(cfg.calibration)
    print(f"OK {args.config}")
    for text in config_summary(cfg, calibration):
        print(f"  {text}")
    if calibration is not None and calibration.line != cfg.line.name:
        print(
            f"  note: calibration is for line '{calibration.line}', "
            f"config is line '{cfg.line.name}'"
        )
    for note in missing_files(cfg):
        print(f"  note: {note}")
    return 0


class _StopOnSignal:
    """SIGINT, SIGTERM and SIGHUP ask the daemon to stop (it drains); a second SIGINT
    aborts. SIGHUP (the terminal closed, or `systemctl kill -s HUP`) must not kill it
    with defects in memory."""

    def __init__(self, stop: Callable[[str], None]) -> None:
        self.stop = stop
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name
        log.info("stop_requested", signal=name)
        self.stop(name)

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_command(args: argparse.Namespace) -> int:
    """Run the inspection daemon until stopped; print (and write) the summary."""
    from rope_inspect.service.daemon import Daemon, RunLimits
    from rope_inspect.service.report import format_summary

    cfg = load_inspect_config(args.config)
    configure_logging(
        getattr(args, "log_format", None) or cfg.logging.format,
        getattr(args, "log_level", None) or cfg.logging.level,
    )
    limits = RunLimits(max_frames=args.max_frames, duration_s=args.duration)
    show_status = sys.stderr.isatty() and not args.no_status
    daemon = Daemon(cfg, config_path=args.config)
    with _StopOnSignal(daemon.request_stop):
        summary = daemon.run(limits, status_line=show_status)
    print(format_summary(summary))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        log.info("report_written", path=str(args.report))
    failure = summary.get("failure")
    if failure:
        log.error("run_inspected_nothing", reason=failure)
        print(f"rope-inspect run: FAILED: {failure}", flush=True)
    return 0 if summary.get("clean_exit", True) else 1
