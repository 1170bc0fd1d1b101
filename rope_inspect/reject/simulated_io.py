"""A recorded fake of a camera's GenICam digital I/O node map (first-class test double).

The simulated GenTL producer that ships with genicam (viky.cti) has no digital I/O
features, so the camera-line output is tested against this model instead. It follows
the SFNC "Digital I/O Control" semantics that real cameras implement:

- `LineSelector` picks the line that `LineMode`, `LineSource` and `LineStatus` address;
  `UserOutputSelector` picks the user output that `UserOutputValue` addresses.
- A line drives its level only in `LineMode` "Output"; its level is then the value of
  the user output named by its `LineSource` (or low for "Off").
- Enumeration nodes refuse values outside `symbolics`; `LineStatus` is read-only.

Every change of a physical line level is recorded in `history` as
(monotonic seconds, line, level), which is what a test (or a scope) would see.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_RW, _RO = 4, 3  # GenApi EAccessMode values


class _Node:
    def __init__(
        self, owner: SimulatedIONodeMap, name: str, symbolics: tuple[str, ...]
    ):
        self._owner = owner
        self._name = name
        self.symbolics = symbolics

    @property
    def value(self) -> Any:
        return self._owner._read(self._name)

    @value.setter
    def value(self, value: Any) -> None:
        self._owner._write(self._name, value)

    def get_access_mode(self) -> int:
        return _RO if self._name == "LineStatus" else _RW


class SimulatedIONodeMap:
    """Digital I/O nodes of a camera with `lines` lines and `user_outputs` outputs."""

    def __init__(self, lines: int = 4, user_outputs: int = 3) -> None:
        self.lines = tuple(f"Line{i}" for i in range(lines))
        self.user_outputs = tuple(f"UserOutput{i}" for i in range(user_outputs))
        self._lock = threading.RLock()
        self._line = self.lines[0]
        self._user = self.user_outputs[0]
        self._mode = dict.fromkeys(self.lines, "Input")
        self._source = dict.fromkeys(self.lines, "Off")
        self._user_value = dict.fromkeys(self.user_outputs, False)
        self._level = dict.fromkeys(self.lines, False)
        self.history: list[tuple[float, str, bool]] = []
        self.writes: list[tuple[str, Any]] = []
        enums = {
            "LineSelector": self.lines,
            "LineMode": ("Input", "Output"),
            "LineSource": ("Off", *self.user_outputs),
            "UserOutputSelector": self.user_outputs,
        }
        for name in (*enums, "UserOutputValue", "LineStatus"):
            setattr(self, name, _Node(self, name, enums.get(name, ())))

    def level(self, line: str) -> bool:
        """The electrical level of a line now."""
        with self._lock:
            return self._level[line]

    def _read(self, name: str) -> Any:
        with self._lock:
            line, user = self._line, self._user
            values = {
                "LineSelector": line,
                "LineMode": self._mode[line],
                "LineSource": self._source[line],
                "UserOutputSelector": user,
                "UserOutputValue": self._user_value[user],
                "LineStatus": self._level[line],
            }
            return values[name]

    def _write(self, name: str, value: Any) -> None:
        node = getattr(self, name)
        if name == "LineStatus":
            raise PermissionError("LineStatus is read-only")
        if node.symbolics and value not in node.symbolics:
            raise ValueError(f"{name} has no entry {value!r}; use {node.symbolics}")
        with self._lock:
            self.writes.append((name, value))
            if name == "LineSelector":
                self._line = value
            elif name == "UserOutputSelector":
                self._user = value
            elif name == "LineMode":
                self._mode[self._line] = value
            elif name == "LineSource":
                self._source[self._line] = value
            elif name == "UserOutputValue":
                self._user_value[self._user] = bool(value)
            self._update_levels()

    def _update_levels(self) -> None:
        now = time.monotonic()
        for line in self.lines:
            source = self._source[line]
            driven = self._mode[line] == "Output" and source != "Off"
            level = driven and self._user_value[source]
            if level != self._level[line]:
                self._level[line] = level
                self.history.append((now, line, level))
