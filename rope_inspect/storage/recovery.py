"""Crash recovery of the defect store, run when the daemon opens it.

After a crash (kill -9, power loss) the folder can hold temp files, the files of a
defect whose row was never inserted, and the pending manifest of what was in flight.
Recovery makes index and files agree again:

- temp files (`.tmp-*`) are removed;
- a defect whose JSON record and every file it names exist, but which has no row, is
  re-indexed (its files were complete; only the insert was lost);
- a defect with files but no JSON was cut off while being written: its files are
  removed and it is reported lost ("partial");
- a row whose files are missing is removed, with what is left of its files, and
  reported lost ("damaged"); a JSON left with missing images is a retention removal
  that was cut off, and is finished silently;
- defects in the pending journal (`journal.py`) that never reached the index are
  reported: "in_flight" when the process died with them in memory (a crash), or
  "unwritten_at_shutdown" when `close()` could not write them (disk full at a clean
  stop). A legacy `pending.json` is read the same way (as a crash) and removed.

The journal itself is left for the store to reset when it reserves it again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rope_inspect.log import get_logger
from rope_inspect.storage.files import TEMP_PREFIX
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.journal import JOURNAL, JournalEntry, read_journal
from rope_inspect.storage.record import ID_PATTERN, DefectRecord, time_of_id

log = get_logger(__name__)
DEFECTS_DIR = "defects"
MANIFEST = "pending.json"  # the journal of older versions, read once and removed
CRASH, SHUTDOWN = "in_flight", "unwritten_at_shutdown"


@dataclass
class LostDefect:
    """A defect the inspector saw that the store does not hold."""

    id: str
    reason: str
    time: str | None = None
    position_m: float | None = None
    score: float | None = None

    @classmethod
    def of(cls, record: DefectRecord, reason: str) -> LostDefect:
        return cls(record.id, reason, record.time, record.position_m, record.score)


@dataclass
class RecoveryReport:
    """What `recover_store` found and did.

    `lost` holds every defect the store does not have; `unwritten_at_shutdown` the
    ones the last run closed without writing (disk full), `lost_in_crash` the rest.
    `unlisted` counts defects the journal had no room to name (only past 50 000).
    """

    temp_removed: int = 0
    files_removed: int = 0
    reindexed: list[str] = field(default_factory=list)
    lost: list[LostDefect] = field(default_factory=list)
    unlisted: int = 0
    unlisted_reason: str = ""
    shutdown_error: str = ""

    @property
    def clean(self) -> bool:
        return not (
            self.temp_removed
            or self.files_removed
            or self.reindexed
            or self.lost
            or self.unlisted
        )

    @property
    def removed_files(self) -> int:
        """Every file removed: temp files and the files of partial or damaged ones."""
        return self.temp_removed + self.files_removed

    @property
    def unwritten_at_shutdown(self) -> list[LostDefect]:
        return [x for x in self.lost if x.reason == SHUTDOWN]

    @property
    def lost_in_crash(self) -> list[LostDefect]:
        return [x for x in self.lost if x.reason != SHUTDOWN]

    @property
    def crash_count(self) -> int:
        """Defects lost in a crash, the unlisted ones included."""
        unlisted = self.unlisted if self.unlisted_reason != SHUTDOWN else 0
        return len(self.lost_in_crash) + unlisted

    @property
    def shutdown_count(self) -> int:
        """Defects the last run closed without writing, the unlisted ones included."""
        unlisted = self.unlisted if self.unlisted_reason == SHUTDOWN else 0
        return len(self.unwritten_at_shutdown) + unlisted

    def describe(self) -> str:
        """One line for the run summary, e.g. "store repaired at start: ..."."""
        parts = []
        crashed, unwritten = self.crash_count, self.shutdown_count
        if unwritten:
            why = f" ({self.shutdown_error})" if self.shutdown_error else ""
            parts.append(f"{unwritten} defect(s) not written at shutdown{why}")
        if crashed:
            parts.append(f"{crashed} defect(s) lost in a crash")
        parts.append(f"{len(self.reindexed)} re-indexed")
        parts.append(
            f"{self.removed_files} file(s) removed ({self.temp_removed} temp, "
            f"{self.files_removed} of cut-off or damaged defects)"
        )
        return "store repaired at start: " + ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for the run summary (`text` is `describe()`)."""
        return {
            "clean": self.clean,
            "temp_files_removed": self.temp_removed,
            "files_removed": self.files_removed,
            "removed_files": self.removed_files,
            "reindexed": len(self.reindexed),
            "lost_in_crash": self.crash_count,
            "unwritten_at_shutdown": self.shutdown_count,
            "shutdown_error": self.shutdown_error,
            "lost": [
                {"id": d.id, "reason": d.reason, "position_m": d.position_m}
                for d in self.lost
            ],
            "text": self.describe(),
        }


def _scan(defects_dir: Path, report: RecoveryReport) -> dict[str, list[Path]]:
    """Files per defect id; temp files are removed on the way."""
    by_id: dict[str, list[Path]] = {}
    for path in sorted(defects_dir.rglob("*")):
        if not path.is_file() and not path.is_symlink():
            continue
        if path.name.startswith(TEMP_PREFIX):
            path.unlink(missing_ok=True)
            report.temp_removed += 1
            continue
        defect_id = path.name.split(".", 1)[0]
        if ID_PATTERN.match(defect_id):
            by_id.setdefault(defect_id, []).append(path)
        else:
            log.warning("store_unknown_file", path=str(path))
    return by_id


def _remove(paths: list[Path], report: RecoveryReport) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.files_removed += 1


def _read_json_record(paths: list[Path]) -> DefectRecord | None:
    for path in paths:
        if path.name.endswith(".json"):
            try:
                return DefectRecord.from_dict(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("store_bad_record", path=str(path), error=str(exc))
    return None


def _check_rows(
    root: Path,
    index: DefectIndex,
    on_disk: dict[str, list[Path]],
    report: RecoveryReport,
) -> set[str]:
    indexed = set()
    for record in list(index.iter_records()):
        missing = [p for p in record.file_paths() if not (root / p).is_file()]
        if not missing:
            indexed.add(record.id)
            continue
        index.delete(record.id)
        _remove(on_disk.pop(record.id, []), report)
        report.lost.append(LostDefect.of(record, "damaged"))
        log.warning("store_row_without_files", id=record.id, missing=missing)
    return indexed


def _adopt_or_remove(
    root: Path,
    index: DefectIndex,
    defect_id: str,
    paths: list[Path],
    report: RecoveryReport,
) -> None:
    record = _read_json_record(paths)
    if record is None:
        _remove(paths, report)
        report.lost.append(LostDefect(defect_id, "partial"))
        return
    files = [root / p for p in record.file_paths()]
    if all(p.is_file() for p in files):
        index.insert(record, sum(p.stat().st_size for p in files))
        report.reindexed.append(defect_id)
        return
    _remove(paths, report)


def _legacy_manifest(root: Path) -> list[JournalEntry]:
    """The records of an old `pending.json` (removed once read)."""
    manifest = root / MANIFEST
    if not manifest.exists():
        return []
    try:
        pending = json.loads(manifest.read_text("utf-8")).get("pending", [])
        records = [DefectRecord.from_dict(item) for item in pending]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("store_bad_manifest", path=str(manifest), error=str(exc))
        records = []
    manifest.unlink()
    return [JournalEntry(r.id, r.position_m, r.score) for r in records]


def _journal_lost(root: Path, index: DefectIndex, report: RecoveryReport) -> None:
    """Report what the journal (or a legacy manifest) names and the index lacks."""
    entries = [(e, CRASH) for e in _legacy_manifest(root)]
    journal = read_journal(root / JOURNAL)
    if journal is not None:
        reason = SHUTDOWN if journal.state == "closed" else CRASH
        entries += [(e, reason) for e in journal.entries]
        report.unlisted, report.unlisted_reason = journal.more, reason
        report.shutdown_error = journal.error if reason == SHUTDOWN else ""
    indexed = index.ids()
    lost_by_id = {lost.id: lost for lost in report.lost}
    for entry, reason in entries:
        lost = lost_by_id.get(entry.id)
        if lost is None and entry.id in indexed:
            continue
        if lost is None:
            lost = LostDefect(entry.id, reason)
            report.lost.append(lost)
            lost_by_id[entry.id] = lost
        elif lost.reason == "partial":
            lost.reason = reason  # its files were cut off by the same event
        lost.time = lost.time or time_of_id(entry.id)
        lost.position_m, lost.score = entry.position_m, entry.score


def _remove_empty_dirs(defects_dir: Path) -> None:
    for folder in sorted(defects_dir.glob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()


def recover_store(root: Path, index: DefectIndex) -> RecoveryReport:
    """Make the index and the files of the store at `root` agree; report the lost tail.

    Only the process that writes the store may call this (it holds the store lock):
    the files of a defect being written by a live writer would look orphaned.
    """
    report = RecoveryReport()
    defects_dir = root / DEFECTS_DIR
    for leftover in root.glob(f"{TEMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)
        report.temp_removed += 1
    on_disk = _scan(defects_dir, report) if defects_dir.is_dir() else {}
    indexed = _check_rows(root, index, on_disk, report)
    for defect_id, paths in on_disk.items():
        if defect_id not in indexed:
            _adopt_or_remove(root, index, defect_id, paths, report)
    _journal_lost(root, index, report)
    if defects_dir.is_dir():
        _remove_empty_dirs(defects_dir)
    if not report.clean:
        log.warning(
            "store_recovered",
            temp_removed=report.temp_removed,
            files_removed=report.files_removed,
            reindexed=len(report.reindexed),
            lost_in_crash=report.crash_count,
            unwritten_at_shutdown=report.shutdown_count,
            text=report.describe(),
        )
    for event, lost in (
        ("store_lost_tail", report.lost_in_crash),
        ("store_unwritten_at_shutdown", report.unwritten_at_shutdown),
    ):
        if lost:
            log.error(
                event,
                count=len(lost),
                defects=[
                    {"id": x.id, "reason": x.reason, "position_m": x.position_m}
                    for x in lost
                ],
            )
    if report.unlisted:
        log.error("store_lost_unlisted", count=report.unlisted)
    return report
