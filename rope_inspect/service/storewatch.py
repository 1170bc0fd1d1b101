"""Noticing that the defect store's folder went away under a running daemon.

The store writes into a folder it opened at start, and its SQLite index stays open: if
someone deletes or replaces that folder (`rm -rf var/store`, a remount), new defects
land in files nobody indexes and the index rows go to a deleted file. The daemon's
status loop asks `StoreWatch.check()` a few times a second; it compares the identity
(device and inode) of the store folder and of its index file with the ones seen at
start, which costs two `stat` calls. A change raises the store alarm and the fault
output; it stays raised until the daemon restarts (recreating the store, and with it
its lock, index and journal, is the store's own job).
"""

from __future__ import annotations

import os
from pathlib import Path

from rope_inspect.log import get_logger

log = get_logger(__name__)

INDEX_FILE = "index.sqlite"


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class StoreWatch:
    """Compares the store folder and index with what they were at start."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._paths = (self.root, self.root / INDEX_FILE)
        self._seen = tuple(_identity(path) for path in self._paths)
        self.problem = ""

    def check(self) -> str:
        """'' while the store is where it was; else what happened (latched)."""
        if self.problem:
            return self.problem
        for path, seen in zip(self._paths, self._seen, strict=True):
            now = _identity(path)
            if seen is None or now == seen:
                continue
            what = "was removed" if now is None else "was replaced"
            self.problem = (
                f"the defect store's {'folder' if path == self.root else 'index'} "
                f"{path} {what} while the daemon ran: new defects are not kept "
                "where the review looks; restart the daemon"
            )
            log.error(
                "store_folder_gone",
                path=str(path),
                what=what,
                action="restart the daemon to recreate the store",
            )
            break
        return self.problem
