"""The pending journal: the defects the store has not written yet, in reserved space.

`pending.journal` says which defects the writer still holds in memory, so that a
restart can report them when they never reach the disk. It must stay current exactly
when the disk is full, so its space is reserved when the store opens (zeros written,
real blocks) and every later write overwrites those blocks in place: it never needs
a new block. (On copy-on-write file systems, btrfs or ZFS, an overwrite still needs
new blocks; there the journal is only as good as the free space.)

The file holds two slots of `slot_bytes`. A write goes to the slot that does not hold
the newest copy, so a write torn by a crash leaves the other one whole. A slot is

    RIJ1 <sequence> <length> <crc32> <state>\\n<length bytes of JSON>

with JSON `{"pending": [[id, position_m, score], ...], "error": "...", "more": n}`.
State "open": the store was running, so after a crash the entries are the lost tail.
State "closed": `close()` could not write them (disk full at shutdown).
"""

from __future__ import annotations

import json
import math
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from rope_inspect.log import get_logger
from rope_inspect.storage.record import DefectRecord

log = get_logger(__name__)
JOURNAL = "pending.journal"
MAGIC = b"RIJ1"
HEADER_BYTES = 64
EXTRA_BYTES = 512  # the error text and the JSON frame around the entries
ENTRY_BYTES = 72  # one [id, position, score] entry, as a rule (more: counted)
MAX_ENTRIES = 50_000
STATES = ("open", "closed")


@dataclass
class JournalEntry:
    """One defect that was not written: its id, rope position and score."""

    id: str
    position_m: float | None
    score: float | None


@dataclass
class JournalState:
    """The newest whole slot of a journal file."""

    state: str
    entries: list[JournalEntry] = field(default_factory=list)
    error: str = ""
    more: int = 0


def _number(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), digits)


def _entry(record: DefectRecord) -> list[object]:
    return [record.id, _number(record.position_m, 4), _number(record.score, 5)]


def _parse_slot(raw: bytes) -> tuple[int, JournalState] | None:
    head, _, rest = raw.partition(b"\n")
    parts = head.split()
    if len(parts) != 5 or parts[0] != MAGIC or parts[4].decode() not in STATES:
        return None
    try:
        seq, length, crc = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None
    body = rest[:length]
    if len(body) != length or zlib.crc32(body) != crc:
        return None
    try:
        data = json.loads(body)
        entries = [JournalEntry(str(i), p, s) for i, p, s in data["pending"]]
    except (ValueError, TypeError, KeyError):
        return None
    state = JournalState(
        parts[4].decode(), entries, str(data.get("error", "")), int(data.get("more", 0))
    )
    return seq, state


def read_journal(path: Path) -> JournalState | None:
    """The newest whole slot of the journal at `path`; None when there is none."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    half = len(raw) // 2
    slots = [_parse_slot(raw[:half]), _parse_slot(raw[half:])] if half else []
    found = [slot for slot in slots if slot is not None]
    return max(found, key=lambda slot: slot[0])[1] if found else None


class PendingJournal:
    """The writing side: reserve at open, then rewrite in place (see the docstring)."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.capacity = min(capacity, MAX_ENTRIES)
        self.slot_bytes = HEADER_BYTES + EXTRA_BYTES + self.capacity * ENTRY_BYTES
        self.reserved = False
        self.closed = False
        self._seq = 0
        self._lock = threading.Lock()
        self._fd: int | None = None

    def reserve(self) -> bool:
        """Create the file with its blocks written (zeros) and an empty open slot.

        False (logged) when the disk cannot hold it: writes are then best effort.
        """
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self._fd).st_size != 2 * self.slot_bytes:
                os.ftruncate(self._fd, 0)  # else its blocks are reused in place
            zeros = bytes(min(self.slot_bytes, 1 << 20))
            for offset in range(0, 2 * self.slot_bytes, len(zeros)):
                size = min(len(zeros), 2 * self.slot_bytes - offset)
                self._pwrite_all(zeros[:size], offset)
            os.fsync(self._fd)
            self.reserved = True
        except OSError as exc:
            log.error(
                "store_journal_unreserved",
                path=str(self.path),
                bytes=2 * self.slot_bytes,
                error=f"{type(exc).__name__}: {exc}",
                hint="free space on the store's disk: while it is full, defects "
                "that cannot be written may go unreported after a crash",
            )
        self.write([], "open")
        return self.reserved

    def _pwrite_all(self, data: bytes, offset: int) -> None:
        if self._fd is None:
            raise OSError("the pending journal is not open")
        view = memoryview(data)
        while view:
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done

    def _payload(self, records: list[DefectRecord], error: str) -> bytes:
        entries = [_entry(r) for r in records[: self.capacity]]
        data = {"pending": entries, "error": error[:300], "more": 0}
        data["more"] = len(records) - len(entries)
        body = json.dumps(data, separators=(",", ":")).encode()
        while len(body) > self.slot_bytes - HEADER_BYTES and entries:
            entries.pop()  # numbers longer than foreseen: keep the count exact
            data["more"] = len(records) - len(entries)
            body = json.dumps(data, separators=(",", ":")).encode()
        return body

    def write(
        self,
        records: list[DefectRecord],
        state: str = "open",
        error: str = "",
        sync: bool = False,
    ) -> bool:
        """Overwrite the older slot with `records`; False when it could not be done.

        After a "closed" write the journal takes no more writes.
        """
        with self._lock:
            if self.closed or self._fd is None:
                return False
            body = self._payload(records, error)
            seq = self._seq + 1
            head = f"{MAGIC.decode()} {seq} {len(body)} {zlib.crc32(body)} {state}"
            slot = head.encode().ljust(HEADER_BYTES - 1) + b"\n" + body
            try:
                self._pwrite_all(slot, (seq % 2) * self.slot_bytes)
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                log.debug("store_journal_unwritten", error=str(exc))
                return False
            self._seq = seq
            self.closed = state == "closed"
            return True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
