"""Reject and fault outputs: the signals the inspector sends to the line.

A `RejectOutput` is one physical (or logged) signal: `set(active)` drives it, `pulse`
turns it on and, without blocking the caller, off again after a duration. The reject
scheduler drives the reject outputs with `set` at the right moments; `FaultOutput`
drives the fault outputs while the inspector cannot inspect. Outputs that talk to a
device (Modbus coil, camera line) raise OutputError with a hint when they cannot.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rope_inspect.errors import OutputError
from rope_inspect.log import get_logger

if TYPE_CHECKING:
    from rope_inspect.config import OutputConfig

log = get_logger(__name__)


@runtime_checkable
class RejectOutput(Protocol):
    """One output signal (reject gate, marker, fault lamp)."""

    name: str

    def set(self, active: bool) -> None:
        """Drive the signal on or off now; OutputError if the device is unreachable."""
        ...

    def pulse(self, duration_s: float) -> None:
        """On now, off after duration_s, without blocking the caller."""
        ...

    def close(self) -> None:
        """Drive the signal off and release the device."""
        ...


class PulseTimer:
    """Turns an output off after a delay on a timer thread; a new pulse extends it."""

    def __init__(self, output: RejectOutput) -> None:
        self._output = output
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def pulse(self, duration_s: float) -> None:
        self._output.set(True)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(duration_s, self._off)
            self._timer.daemon = True
            self._timer.start()

    def _off(self) -> None:
        try:
            self._output.set(False)
        except OutputError as exc:
            log.error("pulse_off_failed", output=self._output.name, error=str(exc))

    def cancel(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            timer.join(1.0)


class LogOutput:
    """An output that only logs (the demo, and a witness in tests).

    `history` keeps the last changes as (monotonic seconds, active).
    """

    def __init__(self, name: str = "log", history: int = 1000) -> None:
        self.name = name
        self.active = False
        self.history: deque[tuple[float, bool]] = deque(maxlen=history)
        self._pulses = PulseTimer(self)

    def set(self, active: bool) -> None:
        if active != self.active:
            self.active = active
            self.history.append((time.monotonic(), active))
            log.info("output_set", output=self.name, active=active)

    def pulse(self, duration_s: float) -> None:
        self._pulses.pulse(duration_s)

    def close(self) -> None:
        self._pulses.cancel()
        self.set(False)


class FaultOutput:
    """The fault signal: raised while any reason is active, cleared when none is.

    Idempotent: the outputs are driven only when the state changes. A failing output
    is logged and counted, never raised: the fault path must not take the daemon down.
    """

    def __init__(self, outputs: Sequence[RejectOutput]) -> None:
        self.outputs = list(outputs)
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()
        self._state = False
        self.errors = 0
        self.changes = 0

    @property
    def active(self) -> bool:
        return self._state

    @property
    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reasons)

    def raise_fault(self, source: str, reason: str) -> None:
        """Mark `source` (camera, engine, store...) as failing; raises the line."""
        with self._lock:
            self._reasons[source] = reason
            self._apply()

    def clear_fault(self, source: str) -> None:
        """`source` works again; the line drops when no source is failing."""
        with self._lock:
            self._reasons.pop(source, None)
            self._apply()

    def _apply(self) -> None:
        wanted = bool(self._reasons)
        if wanted == self._state:
            return
        self._state = wanted
        self.changes += 1
        log.warning("fault_output", active=wanted, reasons=dict(self._reasons))
        for output in self.outputs:
            try:
                output.set(wanted)
            except Exception as exc:
                self.errors += 1
                log.error("fault_output_failed", output=output.name, error=str(exc))

    def close(self) -> None:
        close_outputs(self.outputs)


def close_outputs(outputs: Sequence[RejectOutput]) -> None:
    """Close every output, logging (not raising) the ones that fail."""
    for output in outputs:
        try:
            output.close()
        except Exception as exc:
            log.warning("output_close_failed", output=output.name, error=str(exc))


def open_outputs(
    cfgs: Sequence[OutputConfig], camera_node_map: Any | None = None
) -> list[RejectOutput]:
    """Build the outputs a config lists; the camera line needs the camera's node map."""
    from rope_inspect.config import (
        CameraLineOutputConfig,
        LogOutputConfig,
        ModbusOutputConfig,
    )

    outputs: list[RejectOutput] = []
    try:
        for i, cfg in enumerate(cfgs):
            if isinstance(cfg, LogOutputConfig):
                outputs.append(LogOutput(name=f"log{i}"))
            elif isinstance(cfg, ModbusOutputConfig):
                from rope_inspect.reject.modbus import ModbusCoilOutput

                outputs.append(ModbusCoilOutput(cfg))
            elif isinstance(cfg, CameraLineOutputConfig):
                from rope_inspect.reject.camera_line import CameraLineOutput

                outputs.append(CameraLineOutput(camera_node_map, cfg))
    except Exception:
        close_outputs(outputs)
        raise
    return outputs
