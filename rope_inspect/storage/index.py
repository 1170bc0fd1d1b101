"""The SQLite index of the defect store (WAL mode): one row per complete defect.

A row is inserted only after every file of its defect exists, so a row always has its
files. The row holds the record as JSON plus the columns the review filters and sorts
on; verdict and reject state live in columns and are the truth for those fields. The
store writes the reject state to the JSON file on disk as well; the verdict is in the
index only (the JSON file keeps the record as detected, plus its reject state). Safe
to share between the store's writer thread and readers (one lock), and between
processes (WAL, busy wait).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rope_inspect.storage.record import REJECT_STATES, VERDICTS, DefectRecord

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS defects (
    id TEXT PRIMARY KEY,
    epoch REAL NOT NULL,
    line TEXT NOT NULL,
    position_m REAL,
    score REAL NOT NULL,
    reject_state TEXT NOT NULL,
    verdict TEXT,
    verdict_by TEXT,
    verdict_at TEXT,
    bytes INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS defects_epoch ON defects(epoch);
CREATE INDEX IF NOT EXISTS defects_score ON defects(score);
CREATE INDEX IF NOT EXISTS defects_position ON defects(position_m);
CREATE INDEX IF NOT EXISTS defects_verdict ON defects(verdict);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SortKey = Literal["time", "score", "position"]
VerdictFilter = Literal["any", "none", "defect", "false_alarm"]
_SORT_COLUMNS = {"time": "epoch", "score": "score", "position": "position_m"}
_VALUE_COLUMNS = {"epoch", "score", "position_m"}


@dataclass
class DefectQuery:
    """Filters, order and page of a listing; None means no limit on that field."""

    since: float | None = None
    until: float | None = None
    score_min: float | None = None
    score_max: float | None = None
    verdict: VerdictFilter = "any"
    line: str | None = None
    sort: SortKey = "time"
    descending: bool = True
    offset: int = 0
    limit: int = 60

    def where(self, with_verdict: bool = True) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("epoch", ">=", self.since),
            ("epoch", "<", self.until),
            ("score", ">=", self.score_min),
            ("score", "<=", self.score_max),
            ("line", "=", self.line),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        if with_verdict and self.verdict == "none":
            clauses.append("verdict IS NULL")
        elif with_verdict and self.verdict in VERDICTS:
            clauses.append("verdict = ?")
            params.append(self.verdict)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order(self) -> str:
        column = _SORT_COLUMNS[self.sort]
        direction = "DESC" if self.descending else "ASC"
        return f" ORDER BY {column} IS NULL, {column} {direction}, id {direction}"


def _row_record(row: sqlite3.Row) -> DefectRecord:
    data = json.loads(row["record"])
    data.update(
        reject_state=row["reject_state"],
        verdict=row["verdict"],
        verdict_by=row["verdict_by"],
        verdict_at=row["verdict_at"],
    )
    return DefectRecord.from_dict(data)


class DefectIndex:
    """The `index.sqlite` of a store folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
            (json.dumps(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def _fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def insert(self, record: DefectRecord, nbytes: int) -> None:
        """Add (or replace) the row of a defect whose files all exist."""
        self._execute(
            "INSERT OR REPLACE INTO defects VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id,
                record.epoch,
                record.line,
                record.position_m,
                float(record.score),
                record.reject_state,
                record.verdict,
                record.verdict_by,
                record.verdict_at,
                int(nbytes),
                json.dumps(record.to_dict()),
            ),
        )

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (frees its space)."""
        self._fetchall("PRAGMA wal_checkpoint(TRUNCATE)")

    def delete(self, defect_id: str) -> None:
        self._execute("DELETE FROM defects WHERE id = ?", (defect_id,))

    def get(self, defect_id: str) -> DefectRecord | None:
        rows = self._fetchall("SELECT * FROM defects WHERE id = ?", (defect_id,))
        return _row_record(rows[0]) if rows else None

    def query(self, query: DefectQuery) -> list[DefectRecord]:
        where, params = query.where()
        sql = f"SELECT * FROM defects{where}{query.order()} LIMIT ? OFFSET ?"
        rows = self._fetchall(sql, [*params, query.limit, query.offset])
        return [_row_record(row) for row in rows]

    def count(self, query: DefectQuery) -> int:
        where, params = query.where()
        return int(self._fetchall(f"SELECT COUNT(*) FROM defects{where}", params)[0][0])

    def verdict_counts(self, query: DefectQuery | None = None) -> dict[str, int]:
        """Counts per verdict ('defect', 'false_alarm', 'none') and 'total', over the
        query's other filters."""
        where, params = (query or DefectQuery()).where(with_verdict=False)
        sql = f"SELECT verdict, COUNT(*) FROM defects{where} GROUP BY verdict"
        counts = {"defect": 0, "false_alarm": 0, "none": 0}
        for verdict, n in self._fetchall(sql, params):
            counts[verdict or "none"] = int(n)
        counts["total"] = sum(counts.values())
        return counts

    def set_verdict(
        self, defect_id: str, verdict: str | None, who: str | None, at: str | None
    ) -> bool:
        """Store a QA verdict (None clears it); False when there is no such defect."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} not in {VERDICTS} or None")
        cursor = self._execute(
            "UPDATE defects SET verdict = ?, verdict_by = ?, verdict_at = ?"
            " WHERE id = ?",
            (verdict, who if verdict else None, at if verdict else None, defect_id),
        )
        return cursor.rowcount > 0

    def set_reject_state(self, defect_id: str, state: str) -> bool:
        if state not in REJECT_STATES:
            raise ValueError(f"reject state {state!r} not in {REJECT_STATES}")
        cursor = self._execute(
            "UPDATE defects SET reject_state = ? WHERE id = ?", (state, defect_id)
        )
        return cursor.rowcount > 0

    def oldest(self, n: int) -> list[tuple[DefectRecord, int]]:
        rows = self._fetchall("SELECT * FROM defects ORDER BY epoch, id LIMIT ?", (n,))
        return [(_row_record(row), int(row["bytes"])) for row in rows]

    def total_bytes(self) -> int:
        return int(self._fetchall("SELECT COALESCE(SUM(bytes), 0) FROM defects")[0][0])

    def total_count(self) -> int:
        return int(self._fetchall("SELECT COUNT(*) FROM defects")[0][0])

    def iter_records(self) -> Iterator[DefectRecord]:
        """Every row as a record (rows that no longer parse are skipped)."""
        for row in self._fetchall("SELECT * FROM defects ORDER BY epoch, id"):
            try:
                yield _row_record(row)
            except (ValueError, TypeError, KeyError):
                continue

    def ids(self) -> set[str]:
        return {row[0] for row in self._fetchall("SELECT id FROM defects")}

    def column_values(self, column: str, query: DefectQuery) -> np.ndarray:
        """One numeric column (epoch, score, position_m) of the filtered rows."""
        if column not in _VALUE_COLUMNS:
            raise ValueError(f"column {column!r} not in {sorted(_VALUE_COLUMNS)}")
        where, params = query.where()
        joiner = " AND " if where else " WHERE "
        sql = f"SELECT {column} FROM defects{where}{joiner}{column} IS NOT NULL"
        rows = self._fetchall(sql, params)
        return np.array([row[0] for row in rows], dtype=np.float64)

    def lines(self) -> list[str]:
        return [row[0] for row in self._fetchall("SELECT DISTINCT line FROM defects")]

    def get_meta(self, key: str) -> Any:
        rows = self._fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        self._execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))
        )
