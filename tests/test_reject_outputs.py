"""Log, camera-line and fault outputs; the camera line on the simulated I/O node map."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rope_inspect.acquisition.genicam import GenICamSource, simulated_producer
from rope_inspect.config import (
    CameraLineOutputConfig,
    GenICamSourceConfig,
    LogOutputConfig,
    ModbusOutputConfig,
    OutputConfig,
)
from rope_inspect.errors import OutputError
from rope_inspect.reject.base import FaultOutput, LogOutput, RejectOutput, open_outputs
from rope_inspect.reject.camera_line import CameraLineOutput
from rope_inspect.reject.modbus import ModbusCoilOutput
from rope_inspect.reject.simulated_io import SimulatedIONodeMap


def _line(line: str = "Line1", user: str = "UserOutput1") -> CameraLineOutputConfig:
    return CameraLineOutputConfig(kind="camera_line", line=line, user_output=user)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_open_outputs_builds_each_kind() -> None:
    cfgs: list[OutputConfig] = [
        LogOutputConfig(kind="log"),
        ModbusOutputConfig(kind="modbus", port=1502),
        _line(),
    ]
    outputs = open_outputs(cfgs, SimulatedIONodeMap())
    assert [type(o) for o in outputs] == [LogOutput, ModbusCoilOutput, CameraLineOutput]
    assert all(isinstance(o, RejectOutput) for o in outputs)
    modbus = outputs[1]
    assert isinstance(modbus, ModbusCoilOutput)
    modbus._client.close()  # never connected: nothing to drive off


def test_camera_line_without_a_camera_is_refused() -> None:
    with pytest.raises(OutputError, match="needs a GenICam camera") as err:
        open_outputs([_line()], camera_node_map=None)
    assert "modbus" in err.value.hint


def test_camera_line_drives_the_selected_line_through_the_user_output() -> None:
    io = SimulatedIONodeMap()
    output = CameraLineOutput(io, _line())
    assert io.level("Line1") is False
    output.set(True)
    assert io.level("Line1") is True
    assert [io.level(line) for line in ("Line0", "Line2", "Line3")] == [False] * 3
    output.set(False)
    assert [(line, level) for _, line, level in io.history] == [
        ("Line1", True),
        ("Line1", False),
    ]
    assert ("LineMode", "Output") in io.writes and (
        "LineSource",
        "UserOutput1",
    ) in io.writes


def test_camera_line_pulse_goes_off_after_its_duration() -> None:
    io = SimulatedIONodeMap()
    output = CameraLineOutput(io, _line())
    output.pulse(0.1)
    assert io.level("Line1") is True
    _wait_for(lambda: not io.level("Line1"))
    (t_on, _, _), (t_off, _, _) = io.history
    assert t_off - t_on >= 0.1
    output.close()


def test_camera_line_with_unknown_names_is_explained() -> None:
    with pytest.raises(OutputError, match="Line9") as err:
        CameraLineOutput(SimulatedIONodeMap(), _line(line="Line9"))
    assert "Line0" in err.value.hint and "line" in err.value.hint
    with pytest.raises(OutputError, match="UserOutput7"):
        CameraLineOutput(SimulatedIONodeMap(), _line(user="UserOutput7"))


@pytest.mark.skipif(simulated_producer() is None, reason="genicam's viky.cti is absent")
def test_viky_has_no_digital_outputs_and_says_so() -> None:
    cfg = GenICamSourceConfig(kind="genicam", cti=simulated_producer(), camera="2")
    camera = GenICamSource(cfg)
    camera.open()
    try:
        with pytest.raises(OutputError, match="LineSelector") as err:
            CameraLineOutput(camera.node_map, _line())
        assert "modbus" in err.value.hint
    finally:
        camera.close()


def test_log_output_pulse_and_close() -> None:
    output = LogOutput()
    output.pulse(0.05)
    assert output.active
    _wait_for(lambda: not output.active)
    output.set(True)
    output.close()
    assert [level for _, level in output.history] == [True, False, True, False]


def test_fault_output_follows_its_reasons_and_is_idempotent() -> None:
    io = SimulatedIONodeMap()
    log = LogOutput()
    fault = FaultOutput([CameraLineOutput(io, _line("Line2", "UserOutput2")), log])
    fault.raise_fault("camera", "lost")
    fault.raise_fault("camera", "lost again")
    fault.raise_fault("engine", "NaN output")
    assert fault.active and io.level("Line2")
    fault.clear_fault("camera")
    assert fault.active  # the engine still fails
    fault.clear_fault("engine")
    fault.clear_fault("engine")
    assert not fault.active and not io.level("Line2")
    assert fault.changes == 2
    assert [level for _, level in log.history] == [True, False]


def test_fault_output_survives_a_broken_output() -> None:
    class Broken:
        name = "broken"

        def set(self, active: bool) -> None:
            raise OutputError("gone", "fix it")

        def pulse(self, duration_s: float) -> None:
            pass

        def close(self) -> None:
            pass

    log = LogOutput()
    fault = FaultOutput([Broken(), log])
    fault.raise_fault("camera", "lost")
    assert fault.errors == 1 and log.active
