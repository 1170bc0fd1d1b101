"""The progress display of `build-engine`: builds take minutes on a Jetson.

TensorRT reports nested phases ("Building engine" > "Tactic selection" > ...) with a
step count each, from its own threads, through an `IProgressMonitor`. `BuildProgress`
turns those calls into one status line on a terminal (a line per phase otherwise, so
logs under systemd stay readable) and lets Ctrl-C cancel the build cleanly.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class BuildProgress:
    """Renders TensorRT's phase/step reports; thread safe; cancellable."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._phases: dict[str, list[int]] = {}  # name -> [step, steps]
        self._order: list[str] = []
        self._start = time.monotonic()
        self.cancelled = False

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self._phases[name] = [0, max(int(steps), 1)]
            self._order.append(name)
            if not self._live and parent is None:
                self._write(f"build: {name} ({steps} steps)\n")
            self._render()

    def step_complete(self, name: str, step: int) -> bool:
        """Record a step; False asks TensorRT to cancel (after Ctrl-C)."""
        with self._lock:
            if name in self._phases:
                self._phases[name][0] = int(step) + 1
            self._render()
            return not self.cancelled

    def phase_finish(self, name: str) -> None:
        with self._lock:
            self._phases.pop(name, None)
            if name in self._order:
                self._order.remove(name)
            self._render()

    def cancel(self) -> None:
        self.cancelled = True

    def status_line(self) -> str:
        """'[ 42s] Building engine 1/3 > Tactic selection 17/120'."""
        parts = [f"{n} {s}/{t}" for n, (s, t) in self._phases.items()]
        elapsed = time.monotonic() - self._start
        return f"[{elapsed:4.0f}s] " + (" > ".join(parts) if parts else "done")

    def close(self) -> None:
        with self._lock:
            if self._live:
                self._write("\r\x1b[2K")
            self._write(
                f"build: finished after {time.monotonic() - self._start:.0f} s\n"
            )

    def _render(self) -> None:
        if self._live:
            self._write("\r\x1b[2K" + self.status_line()[:120])

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def make_progress_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A `trt.IProgressMonitor` that forwards to `progress` (class made on import)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(
            self, phase_name: str, parent_phase: str | None, num_steps: int
        ):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return progress.step_complete(phase_name, step)
            except KeyboardInterrupt:
                progress.cancel()
                return False

        def phase_finish(self, phase_name: str) -> None:
            progress.phase_finish(phase_name)

    return _Monitor()
