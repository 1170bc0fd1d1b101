"""The reject scheduler: fire the reject outputs when a defect reaches the actuator.

Positions are rope coordinates in metres, the same ones the decision stage gives each
defect: `position()` says which coordinate is under the camera centre now (from the
line speed or an encoder). A defect centred at p, of length L, reaches an actuator
`distance` downstream when position() = p + distance. The gate is on

    from  position() >= p + distance - L/2 - lead
    until position() >= p + distance + L/2 + lead, and for at least pulse_ms.

With a known speed the scheduler sleeps exactly until the next event; with an encoder
it polls. A reject whose time has already passed when it is scheduled fires at once
and is counted late. Output I/O happens on the scheduler thread (or the caller of
`poll()` in tests), never on the thread that calls `schedule()`. `shutdown()` logs
every pending reject as not fired: none is dropped silently.

A reject counts as fired only when every output switched on for it (or the gate was
already on and its last switch-on had succeeded); when an output fails (a PLC that
cannot be reached) the reject is "failed": counted in `stats().failed`, logged, and
the switch-on is retried for the next reject. Each reject's outcome ("fired",
"failed", "not_fired") is set on the `PendingReject` and passed to `on_outcome`, on
the scheduler thread, so the caller can record it and raise its fault output.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rope_inspect.log import get_logger
from rope_inspect.reject.base import RejectOutput
from rope_inspect.reject.position import LinearRopePosition

if TYPE_CHECKING:
    from rope_inspect.config import RejectConfig

__all__ = ["LinearRopePosition", "PendingReject", "RejectScheduler", "RejectStats"]
log = get_logger(__name__)

_IDLE_WAIT_S = 0.5


@dataclass
class PendingReject:
    """One scheduled reject; positions in rope metres, times on the scheduler clock.

    `due_s`: when it came due and the outputs were driven; `fired_s`: the same, set
    only when every output switched (None for a failed reject); `outcome`: "pending",
    then "fired", "failed" (with `error`) or "not_fired".
    """

    reject_id: int
    defect_id: str | int | None
    on_at_m: float
    off_at_m: float
    scheduled_s: float
    late: bool = False
    fired_s: float | None = None
    due_s: float | None = None
    outcome: str = "pending"
    error: str = ""


@dataclass(frozen=True, slots=True)
class RejectStats:
    """`fired` counts rejects every output switched for; `failed` those where an
    output failed; `outputs_ok` is False while the last switch of an output failed."""

    scheduled: int
    fired: int
    late: int
    not_fired: int
    output_errors: int
    pending: int
    active: bool
    failed: int = 0
    outputs_ok: bool = True


class RejectScheduler:
    """Schedules reject pulses by rope position; see the module docstring."""

    def __init__(
        self,
        outputs: Sequence[RejectOutput],
        cfg: RejectConfig,
        position: Callable[[], float],
        *,
        speed_m_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 0.002,
        on_outcome: Callable[[PendingReject], None] | None = None,
    ) -> None:
        self.outputs = list(outputs)
        self.on_outcome = on_outcome
        self.cfg = cfg
        self.position = position
        self.speed_m_per_s = speed_m_per_s
        self.clock = clock
        self.poll_s = poll_s
        self._pending: list[PendingReject] = []
        self._active: list[PendingReject] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._on = False
        self._on_ok = True  # the last switch-on reached every output
        self._outputs_ok = True
        self._counts = dict.fromkeys(
            ("scheduled", "fired", "late", "not_fired", "output_errors", "failed"), 0
        )

    # -- caller side -------------------------------------------------------------

    def schedule(
        self,
        position_m: float,
        length_m: float = 0.0,
        defect_id: str | int | None = None,
    ) -> PendingReject | None:
        """Schedule a reject for a defect centred at rope coordinate position_m."""
        reach = length_m / 2 + self.cfg.lead_m
        distance = self.cfg.actuator_distance_m
        now_m = self.position()
        with self._cond:
            reject = PendingReject(
                reject_id=next(self._ids),
                defect_id=defect_id,
                on_at_m=position_m + distance - reach,
                off_at_m=position_m + distance + reach,
                scheduled_s=self.clock(),
                late=now_m > position_m + distance - reach,
            )
            if self._closed:
                self._log_not_fired(reject, now_m, "scheduled after shutdown")
                refused = reject
            else:
                refused = None
                self._add(reject, now_m)
        if refused is not None:
            self._report([refused])
            return None
        return reject

    def _add(self, reject: PendingReject, now_m: float) -> None:
        """Count and queue a new reject (lock held)."""
        self._counts["scheduled"] += 1
        if reject.late:
            self._counts["late"] += 1
            log.warning(
                "reject_late",
                defect_id=reject.defect_id,
                late_by_m=round(now_m - reject.on_at_m, 4),
            )
        self._pending.append(reject)
        self._cond.notify()

    def stats(self) -> RejectStats:
        with self._cond:
            return RejectStats(
                **self._counts,
                pending=len(self._pending),
                active=self._on,
                outputs_ok=self._outputs_ok,
            )

    def _report(self, rejects: list[PendingReject]) -> None:
        """Hand each settled reject to `on_outcome` (its errors are logged only)."""
        if self.on_outcome is None:
            return
        for reject in rejects:
            try:
                self.on_outcome(reject)
            except Exception:  # the caller's bug must not stop the rejects
                log.exception(
                    "reject_outcome_callback_failed", defect_id=reject.defect_id
                )

    # -- firing ------------------------------------------------------------------

    def poll(self) -> float:
        """Fire what is due now; returns seconds until the next event is expected."""
        now_s, now_m = self.clock(), self.position()
        pulse_s = self.cfg.pulse_ms / 1000.0
        with self._cond:
            due = [r for r in self._pending if now_m >= r.on_at_m]
            for reject in due:
                self._pending.remove(reject)
                reject.due_s = now_s
                self._active.append(reject)
            self._active = [
                r
                for r in self._active
                if now_m < r.off_at_m or now_s < (r.due_s or now_s) + pulse_s
            ]
            wanted = bool(self._active) or bool(due)  # a due reject always switches
            drive = wanted != self._on or bool(due and not self._on_ok)
            self._on = wanted
            wait = self._next_wait(now_s, now_m, pulse_s)
        ok, error = self._drive(wanted) if drive else (self._on_ok, "")
        if drive and wanted:
            self._on_ok = ok
        if due:
            self._settle(due, now_s, ok, error)
        return wait

    def _settle(
        self, due: list[PendingReject], now_s: float, ok: bool, error: str
    ) -> None:
        """Fired when the outputs switched on for them, else failed; then report."""
        with self._cond:
            for reject in due:
                if ok:
                    reject.fired_s, reject.outcome = now_s, "fired"
                    self._counts["fired"] += 1
                    log.info(
                        "reject_fired", defect_id=reject.defect_id, late=reject.late
                    )
                else:
                    reject.outcome, reject.error = "failed", error
                    self._counts["failed"] += 1
                    log.error(
                        "reject_failed",
                        defect_id=reject.defect_id,
                        late=reject.late,
                        error=error,
                        action="the defect was not marked: raise the fault output",
                    )
        self._report(due)

    def _next_wait(self, now_s: float, now_m: float, pulse_s: float) -> float:
        targets = [r.on_at_m for r in self._pending] + [
            r.off_at_m for r in self._active
        ]
        if not targets:
            return _IDLE_WAIT_S
        if self.speed_m_per_s is None:
            return self.poll_s
        waits = [(t - now_m) / self.speed_m_per_s for t in targets]
        waits += [(r.fired_s or now_s) + pulse_s - now_s for r in self._active]
        return max(min(waits), 0.0)

    def _drive(self, active: bool) -> tuple[bool, str]:
        """Switch every output; (all switched, the errors joined)."""
        errors = []
        for output in self.outputs:
            try:
                output.set(active)
            except Exception as exc:
                errors.append(f"{output.name}: {exc}")
                with self._cond:
                    self._counts["output_errors"] += 1
                log.error("reject_output_failed", output=output.name, error=str(exc))
        self._outputs_ok = not errors
        return not errors, "; ".join(errors)

    # -- thread ------------------------------------------------------------------

    def start(self) -> None:
        """Run `poll()` on a thread of its own until `shutdown()`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="reject", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll()
            with self._cond:
                if not self._stop.is_set():
                    self._cond.wait(wait)

    def shutdown(self, timeout_s: float = 2.0) -> list[PendingReject]:
        """Stop, drive outputs off, log each reject that did not fire; return them."""
        with self._cond:
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        now_m = self.position()
        with self._cond:
            lost, self._pending = self._pending, []
            cut, self._active = self._active, []
            for reject in lost:
                self._log_not_fired(reject, now_m, "shutdown")
            was_on, self._on = self._on, False
        for reject in cut:
            log.warning("reject_cut_short", defect_id=reject.defect_id)
        if was_on:
            self._drive(False)
        self._report(lost)
        return lost

    def _log_not_fired(self, reject: PendingReject, now_m: float, why: str) -> None:
        reject.outcome = "not_fired"
        self._counts["not_fired"] += 1
        log.error(
            "reject_not_fired",
            reason=why,
            defect_id=reject.defect_id,
            due_in_m=round(reject.on_at_m - now_m, 4),
        )
