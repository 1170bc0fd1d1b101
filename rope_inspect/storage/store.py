"""The defect store the daemon writes: crops, overlays, maps, frames, JSON and index.

Layout of a store folder:

    index.sqlite (+ -wal, -shm)     one row per complete defect (WAL mode)
    pending.journal                 what the writer has not written yet, in space
                                    reserved at open (`journal.py`)
    .lock                           held by the one process that writes the store
    defects/YYYY-MM-DD/<id>.crop.png      raw-image crop (RGB)
                       <id>.overlay.png   heat map over the crop (`make_overlay`)
                       <id>.map.png       anomaly-map crop, 16-bit (value * 65535)
                       <id>.frame.jpg     the whole frame, when kept
                       <id>.json          the record; written last, marks completeness

`add()` only copies the arrays and queues them (see `writer.py`); each file is written
atomically, the index row is inserted after all of them, and retention then removes
the oldest defects until the store fits in `max_bytes` (`retention.py`). A write that
fails because the disk is full first frees the oldest defects and tries again.

The reject state is written to both the JSON record (rewritten atomically) and the
index row; the QA verdict lives in the index only (the review sets it while a daemon
may be writing), so readers take records from the index (`StoreView`), which holds
both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rope_inspect.errors import StoreError
from rope_inspect.log import get_logger
from rope_inspect.storage import files
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.journal import JOURNAL, PendingJournal
from rope_inspect.storage.record import REJECT_STATES, DefectRecord
from rope_inspect.storage.recovery import DEFECTS_DIR, RecoveryReport, recover_store
from rope_inspect.storage.reports import CloseReport, StoreStatus
from rope_inspect.storage.retention import Retention, is_disk_full
from rope_inspect.storage.view import INDEX_FILE, StoreView
from rope_inspect.storage.writer import (
    RETRYABLE,
    PendingDefect,
    PendingQueue,
    StoreWriter,
)

if TYPE_CHECKING:
    from rope_inspect.config import StoreConfig

log = get_logger(__name__)
SPACE_MARGIN = 128 * 1024  # freed beyond a defect's bytes (index and WAL pages)


def _check_arrays(
    crop: np.ndarray, map_crop: np.ndarray, frame: np.ndarray | None
) -> None:
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(
            f"crop must be H x W x 3 uint8 RGB, got {crop.dtype} {crop.shape}"
        )
    if np.shape(map_crop)[:2] != crop.shape[:2]:
        raise ValueError(
            f"map crop {np.shape(map_crop)} does not match crop {crop.shape}"
        )
    if frame is not None and (frame.dtype != np.uint8 or frame.ndim != 3):
        raise ValueError(f"frame must be H x W x 3 uint8 RGB, got {frame.shape}")


class DefectStore(StoreView):
    """The writing side of a store folder; one per folder (a lock file enforces it)."""

    def __init__(self, cfg: StoreConfig, *, recover: bool = True) -> None:
        self.cfg = cfg
        root = Path(cfg.path)
        self._lock_fd = self._acquire_lock(root)
        try:
            super().__init__(root, DefectIndex(root / INDEX_FILE))
            self.recovery = RecoveryReport()
            if recover:
                self.recovery = recover_store(root, self.index)
        except (OSError, sqlite3.Error) as exc:
            os.close(self._lock_fd)
            raise StoreError(
                f"cannot open the defect store {root}: {exc}",
                "check the folder's permissions and free space; a damaged "
                "index.sqlite can be moved away (recovery re-indexes the JSON records)",
            ) from exc
        self.retention = Retention(root, self.index, cfg.max_bytes)
        self.journal = PendingJournal(root / JOURNAL, cfg.pending_limit + 1)
        self._reserve_journal()
        self.retention.reserve_ballast()  # after the journal: that matters more
        self.queue = PendingQueue(cfg.pending_limit, cfg.pending_frame_bytes)
        self.writer = StoreWriter(self.queue, self, cfg.retry_backoff_s)
        self._closed: CloseReport | None = None
        self.writer.start()
        log.info("store_opened", path=str(root), defects=self.index.total_count())

    def _reserve_journal(self) -> None:
        """Reserve the journal's space; on a full disk the oldest defects make room."""
        if self.journal.reserve():
            return
        need = 2 * self.journal.slot_bytes + SPACE_MARGIN
        error = OSError(28, "no space for the pending journal")
        if self.retention.free_for_space(need, "", error):
            self.journal.reserve()

    @property
    def removed_by_retention(self) -> int:
        return self.retention.removed

    @staticmethod
    def _acquire_lock(root: Path) -> int:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot create the defect store at {root}: {exc}",
                "check store.path and that the service user may write there",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StoreError(
                f"the defect store {root} is in use by another rope-inspect run",
                "stop the other run or give this one its own store.path",
            ) from exc
        return fd

    def add(
        self,
        record: DefectRecord,
        crop: np.ndarray,
        map_crop: np.ndarray,
        frame: np.ndarray | None = None,
        *,
        copy: bool = True,
    ) -> bool:
        """Queue a defect for writing; never waits for the disk. The arrays are copied.

        With `copy=False` they are queued as given: the caller hands them over and
        must not touch them again (for arrays that are already private copies).
        Returns False (and counts it as dropped) once the store is closed.
        """
        if self._closed is not None:
            self.queue.dropped += 1
            return False
        _check_arrays(crop, map_crop, frame)
        if not (frame is not None and self.cfg.save_full_frame):
            frame = None
        if copy:
            crop = crop.copy()
            frame = None if frame is None else frame.copy()
            map_crop = np.array(map_crop, dtype=np.float32, copy=True)
        item = PendingDefect(
            dataclasses.replace(record),
            crop,
            np.asarray(map_crop, dtype=np.float32).squeeze(),
            frame,
        )
        self.queue.put(item)
        return True

    def set_reject_state(self, defect_id: str, state: str) -> None:
        """Record what became of the reject (fired, late, not_fired, failed) in the
        JSON record and the index row; never waits (the writer thread does it)."""
        if state not in REJECT_STATES:
            raise ValueError(f"reject state {state!r} not in {REJECT_STATES}")
        self.queue.add_update(defect_id, state)

    def close(self, timeout_s: float = 10.0) -> CloseReport:  # type: ignore[override]
        """Write every pending defect it can within `timeout_s`, then close.

        What it cannot write is listed in the report, the log and the journal.
        """
        if self._closed is not None:
            return self._closed
        drained = self.writer.stop(timeout_s)
        _, remaining = self.queue.records()
        error = self.writer.last_error if remaining else ""
        saved = self.journal.write(remaining, "closed", error, sync=True)
        if remaining and not self.writer.alive:
            self._discard_partial(remaining)
        report = CloseReport(
            drained,
            self.writer.written,
            self.queue.dropped,
            [r.id for r in remaining],
            [r.position_m for r in remaining],
            error,
            saved,
            self.retention.removed_for_space,
        )
        self._closed = report
        if remaining:
            log.error(
                "store_close_unwritten",
                count=len(remaining),
                ids=report.unwritten,
                positions_m=report.unwritten_positions_m,
                error=error,
                journal_saved=saved,
            )
        self._log_unapplied_updates()
        log.info("store_closed", written=report.written, dropped=report.dropped,
                 unwritten=len(report.unwritten))  # fmt: skip
        self.journal.close()
        self.index.close()
        os.close(self._lock_fd)
        return report

    def _discard_partial(self, records: list[DefectRecord]) -> None:
        """Remove what an unwritten defect left on disk (it has no row: incomplete)."""
        for record in records:
            folder = self.root / DEFECTS_DIR / record.time[:10]
            for path in folder.glob(f"{record.id}.*"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _log_unapplied_updates(self) -> None:
        updates = self.queue.apply_to_waiting()
        if updates:
            log.error(
                "store_close_states_unwritten",
                count=len(updates),
                states=[f"{i}={s}" for i, s in updates],
            )

    def status(self) -> StoreStatus:
        w = self.writer
        return StoreStatus(
            bytes_used=self.retention.used(),
            max_bytes=self.cfg.max_bytes,
            defects=self.index.total_count() if self._closed is None else 0,
            pending=len(self.queue),
            written=w.written,
            dropped=self.queue.dropped,
            frames_skipped=self.queue.frames_skipped,
            write_errors=w.write_errors,
            failed=w.failed,
            removed_by_retention=self.retention.removed,
            lost_on_open=len(self.recovery.lost) + self.recovery.unlisted,
            alarm=w.alarm,
            last_error=w.last_error,
            removed_for_space=self.retention.removed_for_space,
            unwritten=len(self._closed.unwritten) if self._closed else 0,
            journal_reserved=self.journal.reserved,
        )

    # --- called by the writer thread (WriteSink) ---

    def store_one(self, item: PendingDefect) -> None:
        record = dataclasses.replace(item.record)
        folder = f"{DEFECTS_DIR}/{record.time[:10]}"
        payload = files.defect_payload(
            record, item, folder, self.cfg.frame_jpeg_quality
        )
        nbytes = sum(len(data) for _, data in payload)
        for attempt in (1, 2):
            try:
                self._write_defect(record, payload, nbytes)
                break
            except RETRYABLE as exc:
                self._discard_paths([rel for rel, _ in payload])
                if attempt == 2 or not is_disk_full(exc):
                    raise
                need = nbytes + SPACE_MARGIN
                if not self.retention.free_for_space(need, record.id, exc):
                    raise
        self.retention.enforce(record.id)

    def _write_defect(
        self, record: DefectRecord, payload: list[tuple[str, bytes]], nbytes: int
    ) -> None:
        for rel, data in payload:
            files.write_atomic(self.root / rel, data)
        files.fsync_dir((self.root / record.json).parent)
        self.index.insert(record, nbytes)
        self.retention.bytes += nbytes

    def _discard_paths(self, rels: list[str]) -> None:
        for rel in rels:
            with contextlib.suppress(OSError):
                (self.root / rel).unlink()

    def apply_reject_state(self, defect_id: str, state: str) -> None:
        """JSON record first (atomic rewrite), then the row; both or, on an error
        (retried by the writer), neither changed for good."""
        record = self.index.get(defect_id)
        if record is None:
            log.debug("store_reject_state_unknown", id=defect_id, state=state)
            return
        if record.json:
            path = self.root / record.json
            try:
                data = json.loads(path.read_text("utf-8"))
            except FileNotFoundError:
                data = None
            except ValueError as exc:  # damaged: the row alone keeps the state
                log.warning("store_bad_record", path=str(path), error=str(exc))
                data = None
            if data is not None and data.get("reject_state") != state:
                data["reject_state"] = state
                files.write_atomic(path, json.dumps(data, indent=1).encode())
        self.index.set_reject_state(defect_id, state)

    def write_manifest(self, records: list[DefectRecord]) -> None:
        if not self.journal.write(records, "open"):
            raise OSError("the pending journal could not be written")
