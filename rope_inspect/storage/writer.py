"""The store's writer thread and its bounded queue: inspection never waits for the disk.

`PendingQueue.put` is what the inspection side calls (through `DefectStore.add`): it
only appends under a lock. When the queue is over its limit the oldest waiting defect
is dropped and counted (logged by the writer thread, never on the inspection thread).
Full frames are context, not evidence: past a byte budget new defects are queued
without their frame. The `StoreWriter` thread writes one defect at a time; an OSError
(disk full, read-only, permission) or a SQLite operational error keeps the defect and
retries with backoff while the alarm is up, so writing resumes when space returns.
While the queue changes, the writer rewrites the pending journal (what is in flight
and waiting; `journal.py`, in space reserved at open, so a full disk does not stop
it) at most every `manifest_interval_s`; after a kill -9, recovery reports those
defects as the lost tail. Defects added within that last interval may be missing
from the report.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from rope_inspect.log import get_logger
from rope_inspect.storage.record import DefectRecord

log = get_logger(__name__)
RETRYABLE = (OSError, sqlite3.DatabaseError)  # disk full, read-only, locked, I/O
UNWRITABLE = (ValueError, TypeError, cv2.error)  # this defect's data cannot be encoded


@dataclass
class PendingDefect:
    """A defect handed to the store, not yet on disk (arrays are the store's copies)."""

    record: DefectRecord
    crop: np.ndarray
    map_crop: np.ndarray
    frame: np.ndarray | None

    @property
    def frame_bytes(self) -> int:
        return 0 if self.frame is None else int(self.frame.nbytes)


class PendingQueue:
    """Bounded FIFO, drop-oldest, plus the one defect being written (`in_flight`)."""

    def __init__(self, limit: int, frame_bytes_limit: int) -> None:
        self.limit = limit
        self.frame_bytes_limit = frame_bytes_limit
        self.dropped = 0
        self.frames_skipped = 0
        self.version = 0
        self._items: deque[PendingDefect] = deque()
        self._in_flight: PendingDefect | None = None
        self._frame_bytes = 0
        self._new_drops: deque[DefectRecord] = deque(maxlen=1000)
        self._updates: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def put(self, item: PendingDefect) -> None:
        with self._cond:
            if item.frame is not None and (
                self._frame_bytes + item.frame_bytes > self.frame_bytes_limit
            ):
                item.frame = None
                self.frames_skipped += 1
            self._items.append(item)
            self._frame_bytes += item.frame_bytes
            while len(self._items) > self.limit:
                oldest = self._items.popleft()
                self._frame_bytes -= oldest.frame_bytes
                self.dropped += 1
                self._new_drops.append(oldest.record)
            self.version += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> PendingDefect | None:
        """Move the oldest waiting defect to in-flight and return it (None: timeout)."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            item = self._items.popleft()
            self._frame_bytes -= item.frame_bytes
            self._in_flight = item
            return item

    def done(self) -> None:
        with self._cond:
            self._in_flight = None
            self.version += 1

    def requeue_front(self, item: PendingDefect) -> None:
        with self._cond:
            self._in_flight = None
            self._items.appendleft(item)
            self._frame_bytes += item.frame_bytes

    def __len__(self) -> int:
        with self._cond:
            return len(self._items) + (self._in_flight is not None)

    def records(self) -> tuple[int, list[DefectRecord]]:
        """(version, records in flight and waiting), oldest first."""
        with self._cond:
            items = ([self._in_flight] if self._in_flight else []) + list(self._items)
            return self.version, [item.record for item in items]

    def take_new_drops(self) -> list[DefectRecord]:
        with self._cond:
            drops = list(self._new_drops)
            self._new_drops.clear()
            return drops

    def add_update(self, defect_id: str, state: str) -> None:
        with self._cond:
            self._updates.append((defect_id, state))
            self._cond.notify()

    def apply_to_waiting(self) -> list[tuple[str, str]]:
        """Apply reject-state updates to waiting and in-flight defects (the writer
        thread alone writes those); return the rest (for stored records)."""
        with self._cond:
            items = [*self._items, *([self._in_flight] if self._in_flight else [])]
            waiting = {item.record.id: item.record for item in items}
            rest = []
            for defect_id, state in self._updates:
                if defect_id in waiting:
                    waiting[defect_id].reject_state = state  # type: ignore[assignment]
                else:
                    rest.append((defect_id, state))
            self._updates = []
            return rest

    def keep_updates(self, updates: list[tuple[str, str]]) -> None:
        with self._cond:
            self._updates = updates + self._updates


class WriteSink(Protocol):
    """What the writer thread needs from the store."""

    def store_one(self, item: PendingDefect) -> None: ...

    def apply_reject_state(self, defect_id: str, state: str) -> None: ...

    def write_manifest(self, records: list[DefectRecord]) -> None: ...


class StoreWriter:
    """The thread that empties a `PendingQueue` into the store, retrying faults."""

    def __init__(
        self,
        queue: PendingQueue,
        sink: WriteSink,
        backoff_s: tuple[float, float],
        manifest_interval_s: float = 0.05,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.backoff_s = backoff_s
        self.manifest_interval_s = manifest_interval_s
        self.written = 0
        self.write_errors = 0
        self.failed = 0
        self.alarm = False
        self.last_error = ""
        self._drain = threading.Event()
        self._hard_stop = threading.Event()
        self._manifest_version = 0
        self._manifest_at = 0.0
        self._alarm_since = 0.0
        self._thread = threading.Thread(
            target=self._run, name="defect-store", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float) -> bool:
        """Write what is pending within `timeout_s`; then give up. True if drained."""
        self._drain.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._hard_stop.set()
            self._thread.join(5.0)
        return len(self.queue) == 0

    def _run(self) -> None:
        while not self._hard_stop.is_set():
            self._housekeeping()
            item = self.queue.take(0.1)
            if item is None:
                if self._drain.is_set():
                    break
                continue
            self._housekeeping()
            self._write(item)
        self._housekeeping(force_manifest=True)

    def _write(self, item: PendingDefect) -> None:
        delay = self.backoff_s[0]
        while True:
            try:
                self.sink.store_one(item)
            except RETRYABLE as exc:
                self._raise_alarm(item, exc)
                if self._hard_stop.wait(delay):
                    self.queue.requeue_front(item)
                    return
                delay = min(delay * 2, self.backoff_s[1])
                self._housekeeping()
                continue
            except UNWRITABLE as exc:
                self.failed += 1
                log.error("store_defect_unwritable", id=item.record.id, error=str(exc))
                self.queue.done()
                return
            except Exception:  # a bug must not stop the writer: log it, go on
                self.failed += 1
                log.exception("store_writer_error", id=item.record.id)
                self.queue.done()
                return
            self.queue.done()
            self.written += 1
            self._clear_alarm()
            return

    def _raise_alarm(self, item: PendingDefect, exc: Exception) -> None:
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not self.alarm:
            self.alarm = True
            self._alarm_since = time.monotonic()
            log.error(
                "store_write_failed",
                id=item.record.id,
                error=self.last_error,
                pending=len(self.queue),
                action="defects kept in memory, retrying with backoff",
            )

    def _clear_alarm(self) -> None:
        if self.alarm:
            self.alarm = False
            log.warning(
                "store_write_recovered",
                after_s=round(time.monotonic() - self._alarm_since, 3),
                write_errors=self.write_errors,
                pending=len(self.queue),
            )

    def _housekeeping(self, force_manifest: bool = False) -> None:
        for record in self.queue.take_new_drops():
            log.error(
                "store_pending_dropped",
                id=record.id,
                position_m=record.position_m,
                score=record.score,
                dropped_total=self.queue.dropped,
                pending_limit=self.queue.limit,
            )
        self._apply_updates()
        self._maybe_write_manifest(force_manifest)

    def _apply_updates(self) -> None:
        rest = self.queue.apply_to_waiting()
        for n, (defect_id, state) in enumerate(rest):
            try:
                self.sink.apply_reject_state(defect_id, state)
            except RETRYABLE:
                self.queue.keep_updates(rest[n:])
                return

    def _maybe_write_manifest(self, force: bool) -> None:
        version, records = self.queue.records()
        due = time.monotonic() - self._manifest_at >= self.manifest_interval_s
        if version == self._manifest_version or not (due or force):
            return
        try:
            self.sink.write_manifest(records)
        except RETRYABLE as exc:
            log.debug("store_manifest_unwritten", error=str(exc))
            return
        self._manifest_version = version
        self._manifest_at = time.monotonic()
