"""Opening and closing the parts of the daemon, in data-flow order and back.

`open_parts` opens the store, the reject and fault outputs, the reject scheduler, the
engine and the frame source, then builds the ring, the acquisition thread, the
decision stage and the inspection thread (none started). If any part fails to open,
the ones already open are closed again before the error reaches the user.
`Parts.close(deadline)` undoes it in the order that loses nothing: acquisition first,
then the ring is drained, the tracker flushed, the scheduler shut (pending rejects
logged as not fired), the outputs closed and the store closed last (writes pending).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import open_source
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import InspectConfig
from rope_inspect.decision.calibration import Calibration, load_calibration
from rope_inspect.engine.base import Engine
from rope_inspect.engine.loader import load_engine
from rope_inspect.errors import OutputError
from rope_inspect.log import get_logger
from rope_inspect.reject.base import open_outputs
from rope_inspect.reject.scheduler import RejectScheduler
from rope_inspect.service.capture import MonitoredSource, build_acquirer
from rope_inspect.service.decide import DefectOutputs, LinePosition, make_scorer
from rope_inspect.service.pipeline import Inspector
from rope_inspect.storage import DefectStore

if TYPE_CHECKING:
    from rope_inspect.service.daemon import Daemon
    from rope_inspect.service.groundtruth import SyntheticScorer
    from rope_inspect.service.groundtruth_masks import MaskScorer

log = get_logger(__name__)


@dataclass
class Parts:
    """Everything the daemon opened, and how to close it."""

    cfg: InspectConfig
    calibration: Calibration
    store: DefectStore
    reject_outputs: list[Any]
    fault_outputs: list[Any]
    scheduler: RejectScheduler
    engine: Engine
    source: MonitoredSource
    ring: FrameRing
    acquirer: Acquirer
    decision: DefectOutputs
    inspector: Inspector
    scorer: SyntheticScorer | MaskScorer | None
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def close(self, deadline: float) -> dict[str, Any]:
        """Stop and drain in data-flow order; report what happened.

        The budget up to `deadline` is shared: acquisition gets a fifth, the drain of
        the ring what is left but a reserve of 30 % for writing the store.
        """
        report: dict[str, Any] = {}

        def left(reserve: float = 0.1) -> float:
            return max(0.0, deadline - reserve - time.monotonic())

        self.source.stop_event.set()
        report["acquirer_stopped"] = self.acquirer.stop(min(5.0, left() * 0.2))
        _quietly("source_close", self.source.close)
        store_reserve = left() * 0.3
        drained = self.inspector.join(left(store_reserve) * 0.8)
        if not drained:
            self.inspector.abort()
            self.inspector.join(left(store_reserve))
        report["inspector_drained"] = drained
        report["left_in_ring"] = self.ring.stats().pending
        stuck = self.inspector.alive  # still inside an engine call: leave it be
        if stuck:
            log.error("inspection_stuck_at_stop", note="open defects not flushed")
        report.update(self.decision.shutdown(flush=not stuck))
        for output in self.reject_outputs + self.fault_outputs:
            _quietly("output_close", output.close)
        store = self.store.close(timeout_s=max(0.1, left()))
        report["store"] = {
            "drained": store.drained,
            "written": store.written,
            "dropped": store.dropped,
            "unwritten": store.unwritten,
            "note": store.describe() if hasattr(store, "describe") else "",
        }
        _quietly("engine_close", self.engine.close)
        return report


def _check_reachable(outputs: list[Any], warnings: list[str]) -> None:
    """Connect the outputs that can be (a PLC): one unreachable at start is logged
    and warned about now, not found out at the first defect. Not fatal: the PLC may
    come up later (each write reconnects)."""
    for output in outputs:
        connect = getattr(output, "connect", None)
        if connect is None:
            continue
        try:
            connect()
        except OutputError as exc:
            log.error(
                "output_unreachable_at_start",
                output=output.name,
                error=exc.message,
                action=exc.hint,
            )
            warnings.append(
                f"output {output.name} unreachable at start ({exc.message}): "
                "rejects and faults through it fail until it answers"
            )


def _quietly(what: str, close: Callable[[], Any]) -> None:
    try:
        close()
    except Exception as exc:  # closing must go on with the next part
        log.error("close_failed", part=what, error=str(exc))


def open_parts(
    cfg: InspectConfig,
    daemon: Daemon,
    *,
    calibration: Calibration | None = None,
    source: Any | None = None,
    engine: Engine | None = None,
    lossless: bool | None = None,
) -> Parts:
    """Open every part (see the module docstring); close them again on failure.

    `lossless` (default: a replay read flat out) makes acquisition wait for a free
    ring slot instead of dropping the oldest frame.
    """
    with ExitStack() as undo:
        if calibration is None:
            calibration = load_calibration(cfg.calibration)
        store = DefectStore(cfg.store)
        undo.callback(store.close)
        if engine is None:
            engine = load_engine(cfg.engine, cfg.tile_shape)
            undo.callback(engine.close)

        raw_source = source or open_source(cfg.source, cfg.line)
        if lossless is None:
            lossless = cfg.source.kind == "replay" and not cfg.source.realtime
        monitored = MonitoredSource(raw_source, daemon.health, lossless=lossless)
        daemon.health.register("acquisition")
        monitored.open()
        undo.callback(monitored.close)

        node_map = monitored.node_map
        reject_outputs = list(open_outputs(cfg.reject.outputs, node_map))
        for output in reject_outputs:
            undo.callback(output.close)
        fault_outputs = list(open_outputs(cfg.reject.fault_outputs, node_map))
        for output in fault_outputs:
            undo.callback(output.close)
        _check_reachable(reject_outputs + fault_outputs, daemon.warnings)
        daemon.faults.outputs = fault_outputs
        daemon.faults.drive()

        position = LinePosition(cfg)
        scheduler = RejectScheduler(
            reject_outputs,
            cfg.reject,
            position.now,
            speed_m_per_s=None if position.rope.use_encoder else position.speed,
        )
        scheduler.start()
        undo.callback(scheduler.shutdown)
        ring, acquirer = build_acquirer(cfg, monitored, daemon.health, daemon.faults)
        scorer = make_scorer(cfg, calibration)
        decision = DefectOutputs(
            cfg, calibration, store, scheduler, position, daemon.counters,
            daemon.times, scorer,
        )  # fmt: skip
        inspector = Inspector(
            cfg,
            ring,
            engine,
            decision,
            health=daemon.health,
            counters=daemon.counters,
            times=daemon.times,
            faults=daemon.faults,
            observers=[scorer] if scorer is not None else [],
            on_frame=daemon.on_frame,
            max_inspected=daemon.max_frames,
        )
        parts = Parts(
            cfg, calibration, store, reject_outputs, fault_outputs, scheduler,
            engine, monitored, ring, acquirer, decision, inspector, scorer,
        )  # fmt: skip
        undo.pop_all()
    log.info("parts_opened", calibration=str(cfg.calibration), lossless=lossless)
    return parts
