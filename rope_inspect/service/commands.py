"""`rope-inspect validate-config` and `rope-inspect run`: the daemon's command line.

`validate_config_command` checks a config file with the same start-up checks as `run`
(`service.preflight`) and prints a summary; errors come back as ConfigError with
file:line, key, value and what is allowed, or as the error `run` would stop with.
`run_command` loads the config, sets up logging (CLI flags win), runs the same checks
(and that `--report` can be written) before it opens anything, runs the Daemon until
SIGINT/SIGTERM/SIGHUP, `--max-frames` or `--duration`, then prints the summary and
writes it as JSON with `--report`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.decision.calibration import Calibration
from rope_inspect.log import configure_logging, get_logger
from rope_inspect.service.preflight import preflight
from rope_inspect.vision.tile_shape import describe

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
        calib = f"{cfg.calibration} (not checked)"
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
        f"engine:      {cfg.engine.backend} {cfg.engine.model}, tile "
        f"{describe(cfg.tile_shape)} "
        f"overlap {cfg.tiling.overlap}",
        f"calibration: {calib}",
        f"reject:      {cfg.reject.actuator_distance_m:g} m to the actuator, outputs "
        f"{_outputs_summary(cfg.reject.outputs)}; fault outputs "
        f"{_outputs_summary(cfg.reject.fault_outputs)}",
        f"store:       {cfg.store.path}, at most {cfg.store.max_bytes / 1e6:g} MB",
        f"metrics:     {metrics}",
        f"logging:     {cfg.logging.format}, {cfg.logging.level}",
    ]


def validate_config_command(args: argparse.Namespace) -> int:
    """Check a daemon config as `run` would at start (`preflight`: calibration, engine
    sidecar, paths, ports; not the camera); print OK and a summary. `--syntax-only`
    checks the file alone (for a config meant for another machine)."""
    cfg = load_inspect_config(args.config)
    if getattr(args, "syntax_only", False):
        print(f"OK {args.config} (syntax only: nothing checked on this machine)")
        for text in config_summary(cfg, None):
            print(f"  {text}")
        return 0
    checks = preflight(cfg)
    print(f"OK {args.config}")
    for text in config_summary(cfg, checks.calibration):
        print(f"  {text}")
    for warning in checks.warnings:
        print(f"  WARNING: {warning}")
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
    checks = preflight(cfg, report=args.report)  # before anything opens
    limits = RunLimits(max_frames=args.max_frames, duration_s=args.duration)
    show_status = sys.stderr.isatty() and not args.no_status
    daemon = Daemon(cfg, config_path=args.config, checks=checks)
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
