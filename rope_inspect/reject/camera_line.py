"""A camera's digital output line as a reject or fault output, through GenICam features.

Set up once: LineSelector = the line, LineMode = Output, LineSource = the user output.
Then each `set` writes UserOutputSelector = the user output, UserOutputValue = level.
The node map is shared with the acquisition thread, so writes hold a lock; a camera
without these features is refused at construction with what to use instead.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rope_inspect.acquisition.camera_features import enum_values, feature
from rope_inspect.errors import OutputError
from rope_inspect.log import get_logger
from rope_inspect.reject.base import PulseTimer

if TYPE_CHECKING:
    from rope_inspect.config import CameraLineOutputConfig

log = get_logger(__name__)

_CONFIG_KEY = {"LineSelector": "line", "UserOutputSelector": "user_output"}
_FEATURES = (
    "LineSelector",
    "LineMode",
    "LineSource",
    "UserOutputSelector",
    "UserOutputValue",
)


class CameraLineOutput:
    """Drives a camera output line via its user output."""

    def __init__(self, node_map: Any | None, cfg: CameraLineOutputConfig) -> None:
        self.cfg = cfg
        self.name = f"camera:{cfg.line}/{cfg.user_output}"
        if node_map is None:
            raise OutputError(
                "a camera_line output needs a GenICam camera",
                "use source.kind: genicam, or a log or modbus output",
            )
        missing = [f for f in _FEATURES if feature(node_map, f) is None]
        if missing:
            raise OutputError(
                f"the camera has no digital output features: {', '.join(missing)}",
                "wire the reject to a PLC and use a modbus output",
            )
        self._nodes = node_map
        self._lock = threading.Lock()
        self._pulses = PulseTimer(self)
        self._configure()

    def _write(self, name: str, value: Any) -> None:
        node = getattr(self._nodes, name)
        allowed = enum_values(node)
        if allowed and str(value) not in allowed:
            raise OutputError(
                f"the camera has no {name} {value!r}",
                f"set the output's {_CONFIG_KEY.get(name, name)} to one of: "
                + ", ".join(allowed),
            )
        try:
            node.value = value
        except Exception as exc:
            raise OutputError(
                f"the camera refused {name}={value!r}: {exc}",
                "check the line is an output line (not opto-isolated input only)",
            ) from exc

    def _configure(self) -> None:
        with self._lock:
            self._write("LineSelector", self.cfg.line)
            self._write("LineMode", "Output")
            self._write("LineSource", self.cfg.user_output)
            self._set_locked(False)
        log.info("camera_line_ready", output=self.name)

    def _set_locked(self, active: bool) -> None:
        self._write("UserOutputSelector", self.cfg.user_output)
        self._write("UserOutputValue", bool(active))

    def set(self, active: bool) -> None:
        with self._lock:
            self._set_locked(active)

    def pulse(self, duration_s: float) -> None:
        self._pulses.pulse(duration_s)

    def close(self) -> None:
        self._pulses.cancel()
        self.set(False)
