"""The Modbus coil output against a real pymodbus TCP server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rope_inspect.config import ModbusOutputConfig, RejectConfig
from rope_inspect.errors import OutputError
from rope_inspect.reject.base import open_outputs
from rope_inspect.reject.modbus import ModbusCoilOutput
from rope_inspect.reject.scheduler import LinearRopePosition, RejectScheduler

UNIT, COIL = 1, 5


class LoopbackModbusServer:
    """A pymodbus TCP server on 127.0.0.1 in a thread; records every coil write."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writes: list[tuple[float, int, bool]] = []
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _record(
        self, fc: int, start: int, address: int, count: int, regs: Any, values: Any
    ) -> None:
        if fc == 5 and values is not None:
            self.writes.append((time.monotonic(), address, bool(values[0])))

    def _run(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simutils import DataType

        def block(kind: DataType, value: Any) -> list[SimData]:
            return [SimData(0, count=16, values=value, datatype=kind)]

        bits, regs = DataType.BITS, DataType.REGISTERS
        device = SimDevice(
            id=UNIT,
            simdata=(
                block(bits, False),
                block(bits, False),
                block(regs, 0),
                block(regs, 0),
            ),
            action=self._record,
        )

        async def main() -> None:
            self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self._server.serve_forever(background=True)
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(main())
        self._loop.run_forever()
        self._loop.close()

    def start(self) -> LoopbackModbusServer:
        self._thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError("Modbus server did not start")
        return self

    def stop(self) -> None:
        done = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
        done.result(5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)

    def levels(self) -> list[bool]:
        return [level for _, address, level in self.writes if address == COIL]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[LoopbackModbusServer]:
    running = LoopbackModbusServer(_free_port()).start()
    yield running
    if running._thread.is_alive():
        running.stop()


def _cfg(port: int) -> ModbusOutputConfig:
    return ModbusOutputConfig(
        kind="modbus", port=port, unit=UNIT, coil=COIL, timeout_s=1
    )


def _wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_pulse_turns_the_coil_on_then_off_without_blocking(
    server: LoopbackModbusServer,
) -> None:
    (output,) = open_outputs([_cfg(server.port)])
    assert isinstance(output, ModbusCoilOutput)
    started = time.monotonic()
    output.pulse(0.15)
    returned = time.monotonic() - started
    assert server.levels() == [True]
    _wait_for(lambda: server.levels() == [True, False])
    (t_on, _, _), (t_off, _, _) = server.writes
    assert t_off - t_on >= 0.15
    assert returned < t_off - t_on  # the caller did not wait for the off
    output.close()


def test_server_gone_raises_output_error_and_reconnects_when_back(
    server: LoopbackModbusServer,
) -> None:
    output = ModbusCoilOutput(_cfg(server.port))
    output.set(True)
    server.stop()
    with pytest.raises(OutputError) as err:
        output.set(False)
    assert f"127.0.0.1:{server.port}" in err.value.hint
    with pytest.raises(OutputError, match="cannot connect"):
        output.set(False)
    back = LoopbackModbusServer(server.port).start()
    try:
        output.set(False)
        output.set(True)
        assert back.levels() == [False, True]
        assert output.failures == 2
    finally:
        output.close()
        back.stop()
    assert back.levels()[-1] is False


def test_scheduler_fires_the_coil_when_the_defect_reaches_the_actuator(
    server: LoopbackModbusServer,
) -> None:
    output = ModbusCoilOutput(_cfg(server.port))
    output.connect()
    position = LinearRopePosition(speed_m_per_s=1.0)
    cfg = RejectConfig(actuator_distance_m=0.2, lead_m=0.0, pulse_ms=50)
    scheduler = RejectScheduler([output], cfg, position, speed_m_per_s=1.0)
    scheduler.start()
    scheduled_at = time.monotonic()
    scheduler.schedule(position(), defect_id="d1")
    _wait_for(lambda: server.levels() == [True, False])
    assert server.writes[0][0] - scheduled_at >= 0.2 - 0.01
    assert scheduler.shutdown() == []
    output.close()


def test_unreachable_plc_at_start_is_reported() -> None:
    output = ModbusCoilOutput(_cfg(_free_port()))
    with pytest.raises(OutputError, match="cannot connect") as err:
        output.connect()
    assert "the next write reconnects" in err.value.hint
