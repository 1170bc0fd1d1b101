"""A Modbus TCP coil as a reject or fault output (a PLC input), through pymodbus.

The client connects on first use and again after any failure, so a PLC that was
restarted is picked up by the next write. A write that cannot be delivered raises
OutputError with a hint; the caller (scheduler, fault output) logs and counts it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rope_inspect.errors import OutputError
from rope_inspect.log import get_logger
from rope_inspect.reject.base import PulseTimer

if TYPE_CHECKING:
    from rope_inspect.config import ModbusOutputConfig

log = get_logger(__name__)


class ModbusCoilOutput:
    """Drives one coil of a Modbus TCP server (PLC)."""

    def __init__(self, cfg: ModbusOutputConfig) -> None:
        from pymodbus.client import ModbusTcpClient

        self.cfg = cfg
        self.name = f"modbus:{cfg.host}:{cfg.port}/{cfg.unit}/coil{cfg.coil}"
        self._client = ModbusTcpClient(
            cfg.host, port=cfg.port, timeout=cfg.timeout_s, retries=0
        )
        self._lock = threading.Lock()
        self._pulses = PulseTimer(self)
        self._was_connected = False
        self.writes = 0
        self.failures = 0

    def connect(self) -> None:
        """Connect now (the daemon calls this at start to report a missing PLC)."""
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        if self._client.connected:
            return
        if not self._client.connect():
            raise self._error("cannot connect")
        if not self._was_connected:
            log.info("modbus_connected", output=self.name)
        self._was_connected = True

    def _error(self, what: str, detail: str = "") -> OutputError:
        self.failures += 1
        if self._was_connected:
            log.warning("modbus_disconnected", output=self.name, error=what)
        self._was_connected = False
        self._client.close()
        message = f"Modbus output {self.name}: {what}" + (
            f" ({detail})" if detail else ""
        )
        return OutputError(
            message,
            f"check that the PLC at {self.cfg.host}:{self.cfg.port} is up and "
            f"reachable and that unit {self.cfg.unit} has coil {self.cfg.coil}; "
            "the next write reconnects",
        )

    def set(self, active: bool) -> None:
        from pymodbus.exceptions import ModbusException

        with self._lock:
            self._connect()
            try:
                reply = self._client.write_coil(
                    self.cfg.coil, active, device_id=self.cfg.unit
                )
            except (ModbusException, OSError) as exc:
                raise self._error("write failed", str(exc)) from exc
            if reply.isError():
                raise self._error("the server refused the write", str(reply))
            self.writes += 1

    def pulse(self, duration_s: float) -> None:
        self._pulses.pulse(duration_s)

    def close(self) -> None:
        self._pulses.cancel()
        try:
            self.set(False)
        except OutputError as exc:
            log.warning("modbus_close_not_reset", output=self.name, error=exc.message)
        finally:
            self._client.close()
