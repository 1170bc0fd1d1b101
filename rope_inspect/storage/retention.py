"""Retention of the defect store: the oldest defects go first.

Two reasons to remove defects, both oldest first and never the one being written:

- `enforce`: after each write, until the store fits in `store.max_bytes`;
- `free_for_space`: when a write fails because the disk is full (ENOSPC, EDQUOT, or
  SQLite's "database or disk is full") even though the store is under `max_bytes`
  (a limit larger than the disk, or another program filling it). The newest defects
  matter more than the oldest, so old ones make room and the write is tried again.

A defect is removed row first, JSON last, so a crash in between leaves what recovery
finishes (see `recovery.py`). Removing a row writes to SQLite's WAL, which needs
space itself: the store keeps a small ballast file (`.space-reserve`, zeros) that is
deleted to let those deletes through on a full disk and written again afterwards;
the WAL is then checkpointed and truncated, since on a small disk it can grow to take
what is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from rope_inspect.log import get_logger
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.record import DefectRecord
from rope_inspect.storage.view import INDEX_FILE

log = get_logger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
BATCH = 16
BALLAST = ".space-reserve"
BALLAST_BYTES = 64 * 1024


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors of a full disk (or quota), from the OS or from SQLite."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc).lower()  # SQLITE_FULL: "database or disk is full"
    return False


class Retention:
    """Byte accounting of a store folder and the removal of its oldest defects."""

    def __init__(self, root: Path, index: DefectIndex, max_bytes: int) -> None:
        self.root = root
        self.index = index
        self.max_bytes = max_bytes
        self.bytes = index.total_bytes()
        self.removed = 0
        self.removed_for_space = 0

    def reserve_ballast(self) -> bool:
        """Write the ballast file (if missing); False when the disk has no room."""
        path = self.root / BALLAST
        with contextlib.suppress(OSError):
            if path.stat().st_size == BALLAST_BYTES:
                return True
        try:
            with open(path, "wb", buffering=0) as handle:
                handle.write(bytes(BALLAST_BYTES))
                os.fsync(handle.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            log.warning("store_ballast_unreserved", error=str(exc))
            return False
        return True

    def _release_ballast(self) -> bool:
        try:
            (self.root / BALLAST).unlink()
        except FileNotFoundError:
            return False
        return True

    def index_bytes(self) -> int:
        total = 0
        for name in (INDEX_FILE, INDEX_FILE + "-wal"):
            with contextlib.suppress(OSError):
                total += (self.root / name).stat().st_size
        return total

    def used(self) -> int:
        return self.bytes + self.index_bytes()

    def _remove_oldest(
        self, keep_id: str, done: Callable[[int], bool]
    ) -> tuple[int, int]:
        """Remove oldest defects until `done()`; (count, bytes freed)."""
        removed, freed = 0, 0
        while not done(freed):
            victims = [v for v in self.index.oldest(BATCH) if v[0].id != keep_id]
            if not victims:
                break
            for record, nbytes in victims:
                self.remove_defect(record)
                self.bytes -= nbytes
                removed, freed = removed + 1, freed + nbytes
                if done(freed):
                    break
        return removed, freed

    def enforce(self, keep_id: str) -> None:
        """Remove the oldest defects until the store fits in `max_bytes`."""
        try:
            removed, freed = self._remove_oldest(
                keep_id, lambda _: self.used() <= self.max_bytes
            )
        except (OSError, sqlite3.DatabaseError) as exc:
            log.warning("store_retention_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if removed:
            self.removed += removed
            log.info("store_retention", removed=removed, freed_bytes=freed)

    def free_for_space(self, wanted: int, keep_id: str, error: BaseException) -> int:
        """The disk is full: remove the oldest defects until `wanted` bytes are free
        (or none are left); return the bytes freed (0: nothing could be removed)."""
        released = self._release_ballast()
        target = wanted + (BALLAST_BYTES if released else 0)
        try:
            removed, freed = self._remove_oldest(keep_id, lambda got: got >= target)
            wal_freed = self._truncate_wal()
        except (OSError, sqlite3.DatabaseError) as exc:
            log.error(
                "store_disk_full_retention_failed",
                error=f"{type(exc).__name__}: {exc}",
                write_error=str(error),
            )
            return 0
        finally:
            self.reserve_ballast()
        if removed or wal_freed:
            self.removed_for_space += removed
            log.warning(
                "store_disk_full_retention",
                removed=removed,
                freed_bytes=freed,
                wal_freed_bytes=wal_freed,
                error=f"{type(error).__name__}: {error}",
                left=self.index.total_count(),
                action="the oldest defects made room for the newest",
            )
        return freed + wal_freed

    def _truncate_wal(self) -> int:
        """Checkpoint the index and truncate its WAL; the bytes that freed."""
        wal = self.root / (INDEX_FILE + "-wal")
        before = wal.stat().st_size if wal.exists() else 0
        try:
            self.index.checkpoint()
        except sqlite3.DatabaseError as exc:  # a reader holds it: next time
            log.debug("store_checkpoint_failed", error=str(exc))
        after = wal.stat().st_size if wal.exists() else 0
        return max(before - after, 0)

    def remove_defect(self, record: DefectRecord) -> None:
        """Row first, JSON last: a crash in between leaves what recovery finishes."""
        self.index.delete(record.id)
        for rel in record.file_paths():
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()
