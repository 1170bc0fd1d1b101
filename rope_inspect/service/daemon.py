"""The inspection daemon: every part of the data flow wired together, in threads.

Threads (frigate manner: a stop event, bounded waits, monotonic clocks):

    acquisition (Acquirer) -> FrameRing -> inspection (Inspector) -> decision, in it:
        DefectTracker -> RejectScheduler (its own timer) + DefectStore (its writer)
    watchdog (sd_notify WATCHDOG=1 while no stage is stuck), metrics HTTP server

`start()` runs the start-up checks (`preflight`: calibration of this line, engine
sidecar, paths, metrics port), takes the metrics port, then opens the store, the
outputs, the engine and the camera, and says READY.
`run()` waits for a stop (signal, `--max-frames`, `--duration`, end of a replay) and
reports status. `shutdown()` stops acquisition, drains the ring, flushes the tracker,
shuts the reject scheduler (pending rejects logged as not fired) and closes the store
(every pending defect written), all within `service.stop_timeout_s`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rope_inspect.config import InspectConfig
from rope_inspect.engine.base import Engine
from rope_inspect.log import get_logger
from rope_inspect.service.capture import MonitoredSource
from rope_inspect.service.faults import FaultState
from rope_inspect.service.metrics import Metrics
from rope_inspect.service.notify import HealthMonitor, SystemdNotifier, Watchdog
from rope_inspect.service.parts import Parts, open_parts
from rope_inspect.service.preflight import Preflight, preflight
from rope_inspect.service.report import TerminalStatus, status_text
from rope_inspect.service.stats import Counters, RateMeter, StageTimes
from rope_inspect.service.storewatch import StoreWatch
from rope_inspect.service.summary import build_snapshot, build_summary

log = get_logger(__name__)

POLL_S = 0.1


@dataclass(frozen=True)
class RunLimits:
    """When a bounded run stops on its own: after `max_frames` frames inspected
    (exactly; frames skipped or uninspected do not count), or `duration_s`."""

    max_frames: int | None = None
    duration_s: float | None = None


class Daemon:
    """One inspection daemon; see the module docstring. Not reusable after shutdown."""

    def __init__(
        self,
        cfg: InspectConfig,
        *,
        config_path: Path | None = None,
        source: Any | None = None,
        engine: Engine | None = None,
        notifier: SystemdNotifier | None = None,
        lossless: bool | None = None,
        checks: Preflight | None = None,
    ) -> None:
        self.cfg = cfg
        self.checks = checks
        self.warnings: list[str] = []
        self.lossless = lossless
        self.config_path = config_path
        self.stop_event = threading.Event()
        self.health = HealthMonitor(cfg.metrics.stuck_after_s)
        self.counters = Counters()
        self.rate = RateMeter()
        self.metrics = Metrics(self.snapshot, self.health)
        self.times = StageTimes(sink=self.metrics.observe_stage)
        self.notifier = notifier or SystemdNotifier()
        self.watchdog = Watchdog(self.notifier, self.health)
        self.faults = FaultState(on_change=self._fault_changed)
        self.parts: Parts | None = None
        self.store_watch: StoreWatch | None = None
        self.stopped_by: str | None = None
        self.started_s: float | None = None
        self.ended_s: float | None = None
        self._max_frames: int | None = None
        self._injected_source = source
        self._injected_engine = engine
        self._shutdown_report: dict[str, Any] | None = None
        self._seen_skips = 0
        self._seen_inspected = 0
        self._seen_rejects = (0, 0)  # (failed, fired)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Check, take the metrics port, open every part; READY=1 once the camera is
        open and the engine loaded. Nothing is opened when a check fails."""
        checks = self.checks or preflight(
            self.cfg,
            engine=self._injected_engine,
            source_given=self._injected_source is not None,
        )
        self.warnings = list(checks.warnings)
        if self.cfg.metrics.enabled:
            self.metrics.bind(self.cfg.metrics.host, self.cfg.metrics.port)
        self.notifier.status("starting: opening store, outputs, engine and camera")
        self.parts = open_parts(
            self.cfg,
            self,
            calibration=checks.calibration,
            source=self._injected_source,
            engine=self._injected_engine,
            lossless=self.lossless,
        )
        self.store_watch = StoreWatch(self.cfg.store.path)
        self.parts.acquirer.start()
        self.parts.inspector.start()
        if self.cfg.metrics.enabled:
            self.metrics.serve(self.cfg.metrics.host, self.cfg.metrics.port)
        self.started_s = time.monotonic()
        self.watchdog.start()
        self.notifier.ready(f"inspecting: {self.parts.source.name}")
        log.info(
            "daemon_ready",
            source=self.parts.source.name,
            engine=self.parts.engine.name,
            frame_shape=list(self.parts.source.frame_shape),
            metrics=self.metrics.address,
        )

    def request_stop(self, reason: str) -> None:
        if self.stopped_by is None:
            self.stopped_by = reason
        self.stop_event.set()

    @property
    def max_frames(self) -> int | None:
        """Frames to inspect before stopping (`RunLimits.max_frames`), if any."""
        return self._max_frames

    def on_frame(self, inspected: int) -> None:
        """Called by the inspection thread after each frame taken from the ring."""
        if self._max_frames is not None and inspected >= self._max_frames:
            self.request_stop("max_frames")

    def run(self, limits: RunLimits | None = None, status_line: bool = False) -> dict:
        """start(), wait for a stop, shutdown(); return the summary."""
        limits = limits or RunLimits()
        self._max_frames = limits.max_frames
        try:
            self.start()
            self._wait(limits, TerminalStatus() if status_line else None)
        finally:
            self.shutdown()
        return self.summary()

    def _wait(self, limits: RunLimits, terminal: TerminalStatus | None) -> None:
        parts = self.parts
        if parts is None or self.started_s is None:
            return
        period = 0.5 if terminal else self.cfg.service.status_interval_s
        next_status = time.monotonic() + period
        while not self.stop_event.wait(POLL_S):
            now = time.monotonic()
            self.rate.sample(self.counters.get("frames_inspected"))
            self._watch_acquisition(parts)
            self._watch_rejects(parts)
            self._watch_store()
            if (
                limits.duration_s is not None
                and now - self.started_s >= limits.duration_s
            ):
                self.request_stop("duration")
            elif not parts.inspector.alive:
                self.request_stop(
                    "source_finished" if parts.acquirer.finished else "inspection_ended"
                )
            if now >= next_status:
                self._report_status(terminal)
                next_status = now + period
        if terminal is not None:
            terminal.clear()

    def _watch_acquisition(self, parts: Parts) -> None:
        """Frames the source had to skip (truncated, wrong size, unknown pixel
        format) raise the image-quality alarm; a finished replay is not a stuck stage.
        """
        stats = parts.acquirer.stats()
        if stats.finished:
            self.health.finish("acquisition")
        inspected = self.counters.get("frames_inspected")
        new_skips = stats.skipped - self._seen_skips
        if new_skips and "source_frames" not in self.faults.conditions():
            self.counters.add("image_quality_alarms")
            detail = f"source skipped frames: {parts.source.counters}"
            log.error("image_quality_alarm", reason="source_skipped", skipped=new_skips)
            self.faults.set("source_frames", True, detail)
        elif not new_skips and inspected > self._seen_inspected:
            self.faults.set("source_frames", False)
        self._seen_skips, self._seen_inspected = stats.skipped, inspected

    def _watch_rejects(self, parts: Parts) -> None:
        """A reject whose outputs failed (PLC unreachable) left a defect unmarked:
        raise the fault output until a later reject fires through working outputs.
        """
        stats = parts.scheduler.stats()
        failed, fired = self._seen_rejects
        if stats.failed > failed:
            error = parts.decision.last_reject_error.split("\n", 1)[0]
            detail = (
                f"reject output failed: {stats.failed} defect(s) not marked ({error})"
            )
            errors_before = self.faults.output_errors
            self.faults.set("reject_output", True, detail)
            if self.faults.output_errors > errors_before:
                log.error(
                    "fault_output_failed_too",
                    condition="reject_output",
                    failed_rejects=stats.failed,
                    action="defects pass unmarked and the fault output cannot say "
                    "so: check the PLC and its network",
                )
        elif stats.fired > fired and stats.outputs_ok:
            self.faults.set("reject_output", False)
        self._seen_rejects = (stats.failed, stats.fired)

    def _watch_store(self) -> None:
        """A store folder deleted or replaced under the daemon: alarm and fault."""
        if self.store_watch is None or "store_folder" in self.faults.conditions():
            return
        problem = self.store_watch.check()
        if problem:
            self.faults.set("store_folder", True, problem)

    def _report_status(self, terminal: TerminalStatus | None) -> None:
        text = status_text(self.snapshot())
        self.notifier.status(text)
        if terminal is not None:
            terminal.show(text)
        else:
            log.info("status", text=text)

    def shutdown(self) -> dict[str, Any]:
        """Stop and drain everything within service.stop_timeout_s; idempotent."""
        if self._shutdown_report is not None:
            return self._shutdown_report
        self.request_stop("shutdown")
        self.notifier.stopping(f"stopping ({self.stopped_by}): draining")
        self.health.finish("acquisition")  # stopped on purpose: not a stuck stage
        deadline = time.monotonic() + self.cfg.service.stop_timeout_s
        report: dict[str, Any] = {}
        if self.parts is not None:
            report = self.parts.close(deadline)
        self.watchdog.stop()
        self.metrics.close()
        self.ended_s = time.monotonic()
        report["stop_seconds"] = round(
            self.cfg.service.stop_timeout_s - max(0.0, deadline - self.ended_s), 3
        )
        report["within_stop_timeout"] = self.ended_s <= deadline
        log.info("daemon_stopped", stopped_by=self.stopped_by, **report)
        self.notifier.close()
        self._shutdown_report = report
        return report

    # -- state -------------------------------------------------------------------

    def _fault_changed(self, active: bool, conditions: dict[str, str]) -> None:
        if active:
            self.notifier.status(
                "FAULT: "
                + "; ".join(f"{k}: {v}" for k, v in sorted(conditions.items()))
            )

    def snapshot(self) -> dict[str, Any]:
        """Counters and gauges now (metrics, status line)."""
        return build_snapshot(self)

    def summary(self) -> dict[str, Any]:
        """The end-of-run summary (the --report JSON)."""
        return build_summary(self)

    @property
    def source(self) -> MonitoredSource | None:
        return self.parts.source if self.parts is not None else None

    @property
    def fault_state(self) -> FaultState:
        return self.faults
