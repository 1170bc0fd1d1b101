"""Structured logging: one event per thing that happened, with fields.

Readable on a terminal; JSON lines under systemd (JOURNAL_STREAM or INVOCATION_ID set),
when stderr is not a terminal, or when asked.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now (pytest and daemons may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _want_json(fmt: str) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    under_systemd = bool(
        os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID")
    )
    return under_systemd or not sys.stderr.isatty()


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog (and stdlib logging of libraries) once for the process."""
    numeric = getattr(logging, level.upper())
    renderer: Any
    if _want_json(fmt):
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> Any:
    """A bound structlog logger carrying the component name."""
    return structlog.get_logger(component=name)
