"""What the defect store tells the daemon: its counters and what `close()` did."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StoreStatus:
    """Counters for metrics and the status line.

    `removed_for_space`: defects removed because the disk was full (not by
    `max_bytes`); `unwritten`: after `close()`, the defects it could not write.
    """

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
    removed_for_space: int = 0
    unwritten: int = 0
    journal_reserved: bool = True


@dataclass
class CloseReport:
    """What `close()` wrote and what it could not.

    `unwritten`: ids of the defects still in memory at close, oldest first (also in
    the log event `store_close_unwritten` and in the journal, so the next start
    reports them as "not written at shutdown"); `error`: the last write error;
    `journal_saved`: whether that list reached the journal on disk.
    """

    drained: bool
    written: int
    dropped: int
    unwritten: list[str] = field(default_factory=list)
    unwritten_positions_m: list[float | None] = field(default_factory=list)
    error: str = ""
    journal_saved: bool = True
    removed_for_space: int = 0

    def describe(self) -> str:
        """The summary line about unwritten defects; "" when everything was written."""
        if not self.unwritten:
            return ""
        where = (
            "their ids are in the log event store_close_unwritten and in the "
            "store's pending.journal (reported again at the next start)"
            if self.journal_saved
            else "their ids are in the log event store_close_unwritten only (the "
            "journal could not be written)"
        )
        why = f" ({self.error})" if self.error else ""
        return f"{len(self.unwritten)} defect(s) NOT WRITTEN at shutdown{why}; {where}"
