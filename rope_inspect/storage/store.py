"""The defect store the daemon writes: crops, overlays, maps, frames, JSON and index.

Layout of a store folder:

    index.sqlite (+ -wal, -shm)     one row per complete defect (WAL mode)
    pending.json                    what the writer had not written yet (crash report)
    .lock                           held by the one process that writes the store
    defects/YYYY-MM-DD/<id>.crop.png      raw-image crop (RGB)
                       <id>.overlay.png   heat map over the crop (`make_overlay`)
                       <id>.map.png       anomaly-map crop, 16-bit (value * 65535)
                       <id>.frame.jpg     the whole frame, when kept
                       <id>.json          the record; written last, marks completeness

`add()` only copies the arrays and queues them (see `writer.py`); each file is written
atomically, the index row is inserted after all of them, and retention then removes
the oldest defects (row first, JSON last) until the store fits in `max_bytes`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rope_inspect.errors import StoreError
from rope_inspect.log import get_logger
from rope_inspect.storage import files
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.record import REJECT_STATES, DefectRecord
from rope_inspect.storage.recovery import (
    DEFECTS_DIR,
    MANIFEST,
    RecoveryReport,
    recover_store,
)
from rope_inspect.storage.view import INDEX_FILE, StoreView
from rope_inspect.storage.writer import PendingDefect, PendingQueue, StoreWriter

if TYPE_CHECKING:
    from rope_inspect.config import StoreConfig

log = get_logger(__name__)


@dataclass
class StoreStatus:
    """Counters for metrics and the status line."""

    bytes_used: int
    max_bytes: int
    defects: int
    pending: int
    written: int
    dropped: int
    frames_skipped: int
    write_errors: int
    failed: int
    removed_by_retention: int
    lost_on_open: int
    alarm: bool
    last_error: str


@dataclass
class CloseReport:
    """What `close()` wrote and what it could not (those ids are in pending.json)."""

    drained: bool
    written: int
    dropped: int
    unwritten: list[str] = field(default_factory=list)


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
        self._bytes = self.index.total_bytes()
        self.removed_by_retention = 0
        self.queue = PendingQueue(cfg.pending_limit, cfg.pending_frame_bytes)
        self.writer = StoreWriter(self.queue, self, cfg.retry_backoff_s)
        self._closed: CloseReport | None = None
        self.writer.start()
        log.info("store_opened", path=str(root), defects=self.index.total_count())

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
    ) -> bool:
        """Queue a defect for writing; never waits for the disk. The arrays are copied.

        Returns False (and counts it as dropped) once the store is closed.
        """
        if self._closed is not None:
            self.queue.dropped += 1
            return False
        _check_arrays(crop, map_crop, frame)
        keep_frame = frame is not None and self.cfg.save_full_frame
        item = PendingDefect(
            dataclasses.replace(record),
            crop.copy(),
            np.array(map_crop, dtype=np.float32, copy=True).squeeze(),
            frame.copy() if keep_frame and frame is not None else None,
        )
        self.queue.put(item)
        return True

    def set_reject_state(self, defect_id: str, state: str) -> None:
        """Record what became of the reject (fired, late, not_fired); never waits."""
        if state not in REJECT_STATES:
            raise ValueError(f"reject state {state!r} not in {REJECT_STATES}")
        self.queue.add_update(defect_id, state)

    def close(self, timeout_s: float = 10.0) -> CloseReport:  # type: ignore[override]
        """Write every pending defect it can within `timeout_s`, then close."""
        if self._closed is not None:
            return self._closed
        drained = self.writer.stop(timeout_s)
        _, remaining = self.queue.records()
        report = CloseReport(
            drained, self.writer.written, self.queue.dropped, [r.id for r in remaining]
        )
        self._closed = report
        if remaining:
            log.error(
                "store_close_unwritten",
                count=len(remaining),
                ids=report.unwritten,
                positions_m=[r.position_m for r in remaining],
                error=self.writer.last_error,
            )
        log.info("store_closed", written=report.written, dropped=report.dropped)
        self.index.close()
        os.close(self._lock_fd)
        return report

    def status(self) -> StoreStatus:
        w = self.writer
        return StoreStatus(
            bytes_used=self._bytes + self._index_bytes(),
            max_bytes=self.cfg.max_bytes,
            defects=self.index.total_count() if self._closed is None else 0,
            pending=len(self.queue),
            written=w.written,
            dropped=self.queue.dropped,
            frames_skipped=self.queue.frames_skipped,
            write_errors=w.write_errors,
            failed=w.failed,
            removed_by_retention=self.removed_by_retention,
            lost_on_open=len(self.recovery.lost),
            alarm=w.alarm,
            last_error=w.last_error,
        )

    # --- called by the writer thread (WriteSink) ---

    def store_one(self, item: PendingDefect) -> None:
        record = dataclasses.replace(item.record)
        folder = Path(DEFECTS_DIR) / record.time[:10]
        base = f"{folder}/{record.id}"
        record.crop, record.overlay = f"{base}.crop.png", f"{base}.overlay.png"
        record.map, record.json = f"{base}.map.png", f"{base}.json"
        overlay = files.make_overlay(item.crop, item.map_crop, record.threshold)
        payload = [
            (record.crop, files.encode_png(item.crop)),
            (record.overlay, files.encode_png(overlay)),
            (record.map, files.encode_map16(item.map_crop)),
        ]
        if item.frame is not None:
            record.frame = f"{base}.frame.jpg"
            height, width = item.frame.shape[:2]
            record.extra = {**record.extra, "frame_size": [width, height]}
            jpeg = files.encode_jpeg(item.frame, self.cfg.frame_jpeg_quality)
            payload.append((record.frame, jpeg))
        payload.append((record.json, json.dumps(record.to_dict(), indent=1).encode()))
        for rel, data in payload:
            files.write_atomic(self.root / rel, data)
        files.fsync_dir(self.root / folder)
        nbytes = sum(len(data) for _, data in payload)
        self.index.insert(record, nbytes)
        self._bytes += nbytes
        self._enforce_retention(record.id)

    def apply_reject_state(self, defect_id: str, state: str) -> None:
        self.index.set_reject_state(defect_id, state)

    def write_manifest(self, records: list[DefectRecord]) -> None:
        text = json.dumps({"pending": [r.to_dict() for r in records]})
        files.write_atomic(self.root / MANIFEST, text.encode(), sync=False)

    # --- retention ---

    def _index_bytes(self) -> int:
        total = 0
        for name in (INDEX_FILE, INDEX_FILE + "-wal"):
            with contextlib.suppress(OSError):
                total += (self.root / name).stat().st_size
        return total

    def _enforce_retention(self, keep_id: str) -> None:
        """Remove the oldest defects until the store fits; not the one just written."""
        removed, freed = 0, 0
        while self._bytes + self._index_bytes() > self.cfg.max_bytes:
            victims = [v for v in self.index.oldest(16) if v[0].id != keep_id]
            if not victims:
                break
            for record, nbytes in victims:
                self._remove_defect(record)
                self._bytes -= nbytes
                removed, freed = removed + 1, freed + nbytes
                if self._bytes + self._index_bytes() <= self.cfg.max_bytes:
                    break
        if removed:
            self.removed_by_retention += removed
            log.info("store_retention", removed=removed, freed_bytes=freed)

    def _remove_defect(self, record: DefectRecord) -> None:
        """Row first, JSON last: a crash in between leaves what recovery finishes."""
        self.index.delete(record.id)
        for rel in record.file_paths():
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()
