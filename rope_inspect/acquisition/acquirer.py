"""The acquisition thread: one copy per frame into a ring slot; camera-loss recovery.

`Acquirer` runs a source in its own thread. Each step reserves a ring slot, lets the
source copy one image into it, and publishes it; the ring never blocks this thread.
It counts timeouts, skipped frames, gaps in the camera frame id and errors. When the
source is lost (SourceLost, too many timeouts or errors in a row) it raises the fault
callback, reconnects with exponential backoff and resumes on its own, then clears
the fault. `stop()` never hangs: it joins with a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rope_inspect.acquisition.base import (
    FrameInfo,
    FrameSkipped,
    FrameSource,
    SourceFinished,
)
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import GenICamSourceConfig, SourceConfig
from rope_inspect.errors import SourceLost
from rope_inspect.log import get_logger

log = get_logger(__name__)

FaultCallback = Callable[[bool, str], None]
"""Called with (True, reason) when the source is lost and (False, reason) when back."""


@dataclass(frozen=True, slots=True)
class AcquirerStats:
    """Counters of the acquisition thread at one moment."""

    frames: int
    timeouts: int
    skipped: int
    frame_id_gaps: int
    gap_events: int
    errors: int
    losses: int
    reconnects: int
    connected: bool
    finished: bool
    last_frame_ns: int | None


class Acquirer:
    """Fills a FrameRing from an open FrameSource in a thread of its own."""

    def __init__(
        self,
        source: FrameSource,
        ring: FrameRing,
        *,
        timeout_s: float = 1.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        lost_after_timeouts: int = 5,
        lost_after_errors: int = 5,
        on_fault: FaultCallback | None = None,
    ) -> None:
        if tuple(source.frame_shape) != ring.shape:
            raise ValueError(
                f"ring shape {ring.shape} does not match source {source.frame_shape}"
            )
        self.source = source
        self.ring = ring
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.lost_after_timeouts = lost_after_timeouts
        self.lost_after_errors = lost_after_errors
        self.on_fault = on_fault
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("frames", "timeouts", "skipped", "frame_id_gaps", "gap_events", "errors"),
            0,
        )
        self._losses = 0
        self._reconnects = 0
        self._connected = True
        self._in_row = {"timeouts": 0, "errors": 0}
        self._last_frame_id: int | None = None
        self._last_frame_ns: int | None = None
        self._backoff_next = backoff_s[0]

    @classmethod
    def from_config(
        cls,
        source: FrameSource,
        ring: FrameRing,
        source_cfg: SourceConfig,
        on_fault: FaultCallback | None = None,
    ) -> Acquirer:
        """An acquirer with the timeouts and backoff of a source config section.

        A camera counts as lost after `lost_after_timeouts` silent fetches; a replay or
        the synthetic line is paced by the host and is never lost by timeouts.
        """
        if isinstance(source_cfg, GenICamSourceConfig):
            return cls(
                source,
                ring,
                timeout_s=source_cfg.timeout_s,
                backoff_s=source_cfg.reconnect_backoff_s,
                lost_after_timeouts=source_cfg.lost_after_timeouts,
                on_fault=on_fault,
            )
        timeout_s = max(1.0, 2.0 / source_cfg.fps)
        return cls(
            source, ring, timeout_s=timeout_s, lost_after_timeouts=0, on_fault=on_fault
        )

    # -- control -----------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (the source must already be open)."""
        if self._thread is not None:
            raise RuntimeError("acquirer already started")
        self._thread = threading.Thread(
            target=self._run, name=f"acquire-{self.source.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to end and wait up to timeout_s; True if it ended."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log.error(
                "acquirer_stop_timeout", source=self.source.name, waited_s=timeout_s
            )
            return False
        return True

    def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Wait until a finite source has delivered its last frame."""
        return self._finished.wait(timeout_s)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> AcquirerStats:
        with self._lock:
            return AcquirerStats(
                **self._counts,
                losses=self._losses,
                reconnects=self._reconnects,
                connected=self._connected,
                finished=self._finished.is_set(),
                last_frame_ns=self._last_frame_ns,
            )

    # -- thread ------------------------------------------------------------------

    def _run(self) -> None:
        log.info("acquirer_started", source=self.source.name)
        try:
            while not self._stop.is_set():
                if self._connected:
                    self._step()
                else:
                    self._reconnect()
        except SourceFinished:
            log.info("source_finished", source=self.source.name)
            self._finished.set()
        finally:
            self.ring.close()
            log.info("acquirer_stopped", source=self.source.name, **self._counts)

    def _step(self) -> None:
        slot = self.ring.begin_write()
        try:
            info = self.source.read_into(slot, self.timeout_s)
        except FrameSkipped:
            self.ring.abort_write()
            self._count("skipped")
            self._in_row["timeouts"] = 0
            return
        except SourceLost as exc:
            self.ring.abort_write()
            self._lose(exc.message)
            return
        except SourceFinished:
            self.ring.abort_write()
            raise
        except Exception as exc:
            self.ring.abort_write()
            self._error(exc)
            return
        if info is None:
            self.ring.abort_write()
            self._timeout()
            return
        self.ring.commit(info)
        self._frame(info)

    def _frame(self, info: FrameInfo) -> None:
        self._in_row["timeouts"] = 0
        self._in_row["errors"] = 0
        with self._lock:
            self._counts["frames"] += 1
            self._last_frame_ns = time.monotonic_ns()
        last = self._last_frame_id
        frame_id = info.camera_frame_id
        self._last_frame_id = frame_id
        if last is None:
            return
        if frame_id > last + 1:
            self._count("frame_id_gaps", frame_id - last - 1)
            self._count("gap_events")
            log.warning("camera_frame_gap", after_id=last, frame_id=frame_id)
        elif frame_id <= last:
            log.info("camera_frame_id_restart", after_id=last, frame_id=frame_id)

    def _timeout(self) -> None:
        self._count("timeouts")
        self._in_row["timeouts"] += 1
        limit = self.lost_after_timeouts
        if limit and self._in_row["timeouts"] >= limit:
            self._lose(f"no frame in {limit} timeouts of {self.timeout_s} s")

    def _error(self, exc: Exception) -> None:
        self._count("errors")
        self._in_row["errors"] += 1
        log.error(
            "source_read_error", source=self.source.name, error=str(exc), exc_info=exc
        )
        limit = self.lost_after_errors
        if limit and self._in_row["errors"] >= limit:
            self._lose(f"{limit} read errors in a row, last: {exc}")

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- loss and reconnect ------------------------------------------------------

    def _lose(self, reason: str) -> None:
        with self._lock:
            self._connected = False
            self._losses += 1
        self._in_row["timeouts"] = 0
        self._in_row["errors"] = 0
        log.warning("source_lost", source=self.source.name, reason=reason)
        self._fault(True, reason)

    def _reconnect(self) -> None:
        delay = self._backoff_next
        self._close_source()
        if self._stop.wait(delay):
            return
        try:
            self.source.open()
            if tuple(self.source.frame_shape) != self.ring.shape:
                raise SourceLost(
                    f"frame shape changed to {self.source.frame_shape}, "
                    f"the ring holds {self.ring.shape}"
                )
        except Exception as exc:
            self._backoff_next = min(delay * 2, self.backoff_s[1])
            log.warning(
                "reconnect_failed",
                source=self.source.name,
                error=str(exc),
                retry_in_s=self._backoff_next,
            )
            return
        with self._lock:
            self._connected = True
            self._reconnects += 1
        self._backoff_next = self.backoff_s[0]
        self._last_frame_id = None
        log.info("source_reconnected", source=self.source.name)
        self._fault(False, "source reconnected")

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.warning("source_close_failed", source=self.source.name, error=str(exc))

    def _fault(self, active: bool, reason: str) -> None:
        if self.on_fault is None:
            return
        try:
            self.on_fault(active, reason)
        except Exception as exc:
            log.error("fault_callback_failed", error=str(exc), exc_info=exc)
