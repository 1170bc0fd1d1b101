"""The fault output: raised while the inspector cannot inspect, so the line can act.

Several conditions can stop inspection at once (the camera is lost, the engine fails or
returns NaN, frames are black or saturated). `FaultState` keeps one entry per condition
and drives the fault outputs: raised when the first condition appears, cleared only
when the last one is gone. Every change is one log event; a fault output that fails to
switch is logged and retried on the next change, never raised into the caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rope_inspect.log import get_logger

HISTORY = 1000  # fault changes kept for the run summary

log = get_logger(__name__)


class SwitchedOutput(Protocol):
    """The part of a RejectOutput the fault state drives."""

    def set(self, active: bool) -> None: ...


class FaultState:
    """Active fault conditions -> the level of the fault outputs."""

    def __init__(
        self,
        outputs: Sequence[SwitchedOutput] = (),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool, dict[str, str]], Any] | None = None,
    ) -> None:
        self.outputs: Sequence[SwitchedOutput] = list(outputs)
        self._clock = clock
        self._on_change = on_change
        self._active: dict[str, str] = {}
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        self.raised_count = 0
        self.output_errors = 0
        # the last changes (raise / clear), bounded: a service runs for months
        self.history: deque[tuple[str, bool, str]] = deque(maxlen=HISTORY)

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._active)

    def conditions(self) -> dict[str, str]:
        with self._lock:
            return dict(self._active)

    def set(self, condition: str, active: bool, detail: str = "") -> None:
        """Raise or clear one condition (idempotent); switch the outputs on a change."""
        with self._lock:
            was_active = bool(self._active)
            if active == (condition in self._active):
                if active:
                    self._active[condition] = detail or self._active[condition]
                return
            if active:
                self._active[condition] = detail
                self._since[condition] = self._clock()
            else:
                self._active.pop(condition, None)
                lasted = self._clock() - self._since.pop(condition, self._clock())
            now_active = bool(self._active)
            self.history.append((condition, active, detail))
            if now_active and not was_active:
                self.raised_count += 1
            conditions = dict(self._active)
        if active:
            log.error("fault_raised", condition=condition, detail=detail)
        else:
            log.info("fault_cleared", condition=condition, lasted_s=round(lasted, 3))
        if now_active != was_active:
            self._drive(now_active, conditions)

    def _set_outputs(self, level: bool) -> None:
        for output in self.outputs:
            try:
                output.set(level)
            except Exception as exc:  # a broken output must not stop inspection
                self.output_errors += 1
                log.error(
                    "fault_output_failed",
                    output=type(output).__name__,
                    level=level,
                    error=str(exc),
                )

    def _drive(self, level: bool, conditions: dict[str, str]) -> None:
        self._set_outputs(level)
        log.warning("fault_output", active=level, conditions=sorted(conditions))
        if self._on_change is not None:
            self._on_change(level, conditions)

    def drive(self) -> None:
        """Set every fault output to the current level (at start: a known state)."""
        self._set_outputs(self.active)

    def clear_all(self) -> None:
        for condition in list(self.conditions()):
            self.set(condition, False)
