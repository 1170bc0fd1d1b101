"""A full disk loses no defect without a record of it, and makes room when it can.

- the pending journal is rewritten in space reserved at open, so on a full disk the
  defects still in memory are named at close (report, log, journal) and reported again
  at the next start as "not written at shutdown", not as a crash;
- a kill -9 while the disk is full still leaves the whole lost tail in the journal;
- a write that fails with ENOSPC while the store holds old defects removes the oldest
  to make room for the new one (`max_bytes` larger than the disk).

The real-disk tests mount a small tmpfs (root only; skipped elsewhere).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from disk_helpers import fill, tmpfs
from structlog.testing import capture_logs

from rope_inspect.config import StoreConfig
from rope_inspect.storage import DefectStore, files
from rope_inspect.storage.journal import JOURNAL, PendingJournal, read_journal
from rope_inspect.storage.sample import sample_defect

T0 = 1_700_000_000.0


def store_cfg(path: Path, **extra: object) -> StoreConfig:
    return StoreConfig.model_validate(
        {"path": path, "retry_backoff_s": (0.01, 0.05), **extra}
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def samples(count: int, seed: int = 0, start: float = T0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [sample_defect(rng, start + n, float(n)) for n in range(count)]


def test_journal_keeps_the_newest_whole_slot(tmp_path: Path) -> None:
    records = [item[0] for item in samples(3)]
    journal = PendingJournal(tmp_path / JOURNAL, capacity=4)
    assert journal.reserve()
    size = (tmp_path / JOURNAL).stat().st_size
    assert size == 2 * journal.slot_bytes
    assert journal.write(records[:2], "open")
    assert journal.write(records, "open")
    state = read_journal(tmp_path / JOURNAL)
    assert state is not None and state.state == "open"
    assert [e.id for e in state.entries] == [r.id for r in records]
    # a torn write of the newest slot: the older one is read instead
    newest = 0 if journal._seq % 2 == 0 else journal.slot_bytes
    with open(tmp_path / JOURNAL, "r+b") as handle:
        handle.seek(newest + 70)
        handle.write(b"garbage")
    state = read_journal(tmp_path / JOURNAL)
    assert state is not None and [e.id for e in state.entries] == [
        r.id for r in records[:2]
    ]
    # more than it has room for: the rest is counted, never silently lost
    many = [item[0] for item in samples(7, seed=1)]
    assert journal.write(many, "closed", "disk full")
    state = read_journal(tmp_path / JOURNAL)
    assert state is not None and state.state == "closed"
    assert len(state.entries) == 4 and state.more == 3 and state.error == "disk full"
    assert not journal.write([], "open")  # closed: takes no more writes
    assert (tmp_path / JOURNAL).stat().st_size == size
    journal.close()


def test_full_disk_at_close_is_reported_again_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        store = DefectStore(store_cfg(disk / "store", max_bytes=10**9))
        filler = fill(disk)
        items = samples(6)
        for item in items:
            store.add(*item)
        wait_for(lambda: store.status().alarm)
        with capture_logs() as logs:
            report = store.close(timeout_s=0.5)
        ids = [item[0].id for item in items]
        assert report.unwritten == ids and report.journal_saved
        assert "No space left" in report.error
        assert "6 defect(s) NOT WRITTEN at shutdown" in report.describe()
        assert store.status().unwritten == 6
        event = next(e for e in logs if e["event"] == "store_close_unwritten")
        assert event["ids"] == ids and event["count"] == 6

        filler.unlink()
        with capture_logs() as logs:
            again = DefectStore(store_cfg(disk / "store"))
        found = again.recovery
        assert [x.id for x in found.unwritten_at_shutdown] == ids
        assert not found.lost_in_crash and found.shutdown_count == 6
        assert all(x.position_m is not None for x in found.lost)
        text = found.describe()
        assert "6 defect(s) not written at shutdown" in text and "crash" not in text
        assert found.to_dict()["removed_files"] == found.removed_files
        events = [e["event"] for e in logs]
        assert "store_unwritten_at_shutdown" in events
        assert "store_lost_tail" not in events
        again.close()
        assert DefectStore(store_cfg(disk / "store")).recovery.clean


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rope_inspect.config import StoreConfig
    from rope_inspect.storage import DefectStore
    from rope_inspect.storage.sample import sample_defect

    root, filler, ids = sys.argv[1], sys.argv[2], open(sys.argv[3], "w")
    store = DefectStore(StoreConfig.model_validate(
        {"path": root, "retry_backoff_s": (0.01, 0.05)}))
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\\0" * 4096)
        except OSError:
            pass
    rng = np.random.default_rng(3)
    for n in range(12):
        item = sample_defect(rng, 1.7e9 + n, float(n))
        store.add(*item)
        ids.write(item[0].id + "\\n")
        ids.flush()
        time.sleep(0.02)
    print("done", flush=True)
    time.sleep(60)
    """
)


def test_kill_on_a_full_disk_reports_the_whole_tail(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        paths = [str(disk / "store"), str(disk / "fill"), str(tmp_path / "ids.txt")]
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, *paths],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "done":
                break
        added = (tmp_path / "ids.txt").read_text().split()
        time.sleep(0.5)  # the journal is rewritten within 50 ms of a change
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
        (disk / "fill").unlink()
        store = DefectStore(store_cfg(disk / "store"))
        found = store.recovery
        assert len(added) == 12
        assert {x.id for x in found.lost_in_crash} == set(added)
        assert not found.unwritten_at_shutdown
        assert "12 defect(s) lost in a crash" in found.describe()
        store.close()


def test_full_disk_frees_the_oldest_defects_for_new_ones(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "3m") as disk:
        store = DefectStore(store_cfg(disk / "store", max_bytes=10**9))
        old = samples(4)
        for item in old:
            store.add(*item)
        wait_for(lambda: store.status().written == 4)
        fill(disk)
        new = samples(2, seed=5, start=T0 + 100)
        with capture_logs() as logs:
            for item in new:
                store.add(*item)
            wait_for(lambda: store.status().written == 6, timeout_s=60)
        ids = store.index.ids()
        assert {item[0].id for item in new} <= ids
        assert old[0][0].id not in ids  # the oldest went first
        assert store.status().removed_for_space >= 1
        assert any(e["event"] == "store_disk_full_retention" for e in logs)
        report = store.close()
        assert report.unwritten == [] and report.removed_for_space >= 1


def test_enospc_with_old_defects_makes_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without root: a pretend disk that holds a fixed number of bytes."""
    real_write = files.write_atomic
    capacity = {"bytes": 10**9}

    def used() -> int:
        return sum(p.stat().st_size for p in (tmp_path / "defects").rglob("*.*"))

    def small_disk(path: Path, data: bytes, sync: bool = True) -> None:
        if used() + len(data) > capacity["bytes"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data, sync)

    monkeypatch.setattr(files, "write_atomic", small_disk)
    store = DefectStore(store_cfg(tmp_path, max_bytes=10**9))
    old = samples(10)
    for item in old:
        store.add(*item)
    wait_for(lambda: store.status().written == 10)
    capacity["bytes"] = used() + 1000  # full: the next defect does not fit
    new = samples(1, seed=9, start=T0 + 100)[0]
    with capture_logs() as logs:
        store.add(*new)
        wait_for(lambda: store.status().written == 11)
    ids = store.index.ids()
    assert new[0].id in ids and old[0][0].id not in ids
    assert old[-1][0].id in ids  # only as many as needed went
    event = next(e for e in logs if e["event"] == "store_disk_full_retention")
    assert event["removed"] == store.status().removed_for_space >= 1
    assert "No space left" in event["error"]
    store.close()
