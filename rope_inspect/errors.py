"""Exceptions that carry what the user should do next.

Every error the user can cause (a config key, a missing camera, a mismatched engine)
is raised as a subclass of `RopeInspectError` with a `hint`; the CLI prints the message
and the hint and exits non-zero, without a traceback.
"""

from __future__ import annotations


class RopeInspectError(Exception):
    """An error with a message and a hint that says what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(RopeInspectError):
    """A config file that cannot be read or does not validate."""


class DataError(RopeInspectError):
    """A data folder, image or mask that cannot be used."""


class SourceError(RopeInspectError):
    """A frame source (camera, replay) that cannot be opened or read."""


class SourceLost(SourceError):
    """A frame source that was open and stopped delivering (camera unplugged)."""


class EngineError(RopeInspectError):
    """An inference engine that cannot be loaded or failed on a batch."""


class EngineMismatch(EngineError):
    """An engine whose sidecar does not match the config or this machine."""


class MissingExtra(RopeInspectError):
    """An optional dependency that is not installed."""

    def __init__(self, package: str, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the Python package '{package}', which is not installed",
            f"pip install 'rope-inspect[{extra}]'",
        )


class StoreError(RopeInspectError):
    """A defect store that cannot be opened or written."""


class OutputError(RopeInspectError):
    """A reject or fault output (Modbus, camera line) that cannot be driven."""
