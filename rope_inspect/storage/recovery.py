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
- records in `pending.json` that never reached the index are reported lost
  ("in_flight"): the tail the writer had not written when the process died.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rope_inspect.log import get_logger
from rope_inspect.storage.files import TEMP_PREFIX
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.record import ID_PATTERN, DefectRecord

log = get_logger(__name__)
DEFECTS_DIR = "defects"
MANIFEST = "pending.json"


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
    """What `recover_store` found and did."""

    temp_removed: int = 0
    files_removed: int = 0
    reindexed: list[str] = field(default_factory=list)
    lost: list[LostDefect] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.temp_removed or self.files_removed or self.reindexed or self.lost
        )


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


def _manifest_lost(root: Path, index: DefectIndex, report: RecoveryReport) -> None:
    manifest = root / MANIFEST
    if not manifest.exists():
        return
    indexed = index.ids()
    lost_by_id = {lost.id: lost for lost in report.lost}
    try:
        pending = json.loads(manifest.read_text("utf-8")).get("pending", [])
        records = [DefectRecord.from_dict(item) for item in pending]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("store_bad_manifest", path=str(manifest), error=str(exc))
        records = []
    for record in records:
        if record.id in lost_by_id:
            lost = lost_by_id[record.id]
            lost.time, lost.position_m, lost.score = (
                record.time,
                record.position_m,
                record.score,
            )
        elif record.id not in indexed:
            report.lost.append(LostDefect.of(record, "in_flight"))
    manifest.unlink()


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
    _manifest_lost(root, index, report)
    if defects_dir.is_dir():
        _remove_empty_dirs(defects_dir)
    if not report.clean:
        log.warning(
            "store_recovered",
            temp_removed=report.temp_removed,
            files_removed=report.files_removed,
            reindexed=len(report.reindexed),
            lost=len(report.lost),
        )
    if report.lost:
        log.error(
            "store_lost_tail",
            count=len(report.lost),
            defects=[
                {"id": x.id, "reason": x.reason, "position_m": x.position_m}
                for x in report.lost
            ],
        )
    return report
