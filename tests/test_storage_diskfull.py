"""Disk full or store not writable: add() goes on, defects wait, the alarm is raised,
and they are written when the disk takes them again.

Two ways in: the store's write function patched to fail with ENOSPC/EACCES/EROFS, and
(as root, where mount works) a real 4 MiB tmpfs filled up and remounted read-only.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from disk_helpers import fill, tmpfs
from structlog.testing import capture_logs

from rope_inspect.config import StoreConfig
from rope_inspect.storage import DefectStore, files
from rope_inspect.storage.sample import sample_defect

T0 = 1_700_000_000.0


def store_cfg(path: Path, **extra: object) -> StoreConfig:
    return StoreConfig.model_validate(
        {"path": path, "retry_backoff_s": (0.01, 0.05), **extra}
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def samples(count: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [sample_defect(rng, T0 + n, float(n)) for n in range(count)]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_failing_disk_keeps_defects_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    real_write = files.write_atomic
    disk_ok = {"value": False}

    def flaky_write(path: Path, data: bytes, sync: bool = True) -> None:
        if not disk_ok["value"]:
            raise OSError(code, os.strerror(code), str(path))
        real_write(path, data, sync)

    monkeypatch.setattr(files, "write_atomic", flaky_write)
    store = DefectStore(store_cfg(tmp_path, pending_limit=5))
    items = samples(8)
    with capture_logs() as logs:
        for item in items[:3]:
            assert store.add(*item) is True
        wait_for(lambda: store.status().alarm)
        status = store.status()
        assert status.pending == 3 and status.write_errors >= 1 and status.written == 0
        assert str(os.strerror(code)) in status.last_error

        for item in items[3:]:
            assert store.add(*item) is True  # over the limit: the oldest waiting go
        wait_for(lambda: any(e["event"] == "store_pending_dropped" for e in logs))
        assert store.status().dropped == 2
        assert store.status().pending == 6  # five waiting and the one being retried

        disk_ok["value"] = True
        wait_for(lambda: store.status().pending == 0)
    status = store.status()
    assert not status.alarm and status.written == 6
    ids = [item[0].id for item in items]
    assert store.index.ids() == {ids[0], *ids[3:]}  # ids[1], ids[2] were dropped
    events = [e["event"] for e in logs]
    assert "store_write_failed" in events and "store_write_recovered" in events
    store.close()


def test_close_reports_what_it_could_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes, sync: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_atomic", full)
    store = DefectStore(store_cfg(tmp_path))
    items = samples(3)
    for item in items:
        store.add(*item)
    with capture_logs() as logs:
        report = store.close(timeout_s=0.3)
    assert not report.drained
    assert report.unwritten == [item[0].id for item in items]
    unwritten = [e for e in logs if e["event"] == "store_close_unwritten"]
    assert unwritten and unwritten[0]["count"] == 3


def test_frames_are_shed_before_defects(tmp_path: Path) -> None:
    item = samples(1)[0]
    frame_bytes = item[3].nbytes
    store = DefectStore(store_cfg(tmp_path, pending_frame_bytes=frame_bytes))
    with store.queue._cond:  # hold the writer off so both defects wait together
        store.add(*item)
        second = samples(1, seed=9)[0]
        store.add(*second)
    assert store.status().frames_skipped == 1
    store.close(timeout_s=30)
    view = DefectStore(store_cfg(tmp_path))
    first_stored, second_stored = view.get(item[0].id), view.get(second[0].id)
    assert first_stored is not None and first_stored.frame is not None
    assert second_stored is not None and second_stored.frame is None
    view.close()


def test_real_full_and_read_only_tmpfs(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        store = DefectStore(store_cfg(disk / "store"))
        items = samples(4)
        filler = fill(disk)  # full, and no old defect to make room with
        store.add(*items[0])
        store.add(*items[1])
        wait_for(lambda: store.status().alarm)
        assert store.status().pending == 2
        filler.unlink()
        wait_for(lambda: store.status().written == 2 and not store.status().alarm)
        store.add(*items[2])
        wait_for(lambda: store.status().written == 3)

        defects = str(disk / "store" / "defects")  # a read-only bind mount over it
        subprocess.run(["mount", "--bind", defects, defects], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", defects], check=True)
        store.add(*items[3])
        wait_for(lambda: store.status().alarm)
        assert "Read-only" in store.status().last_error
        subprocess.run(["umount", defects], check=True)
        wait_for(lambda: store.status().written == 4 and store.status().pending == 0)
        assert store.status().removed_for_space == 0
        assert store.index.ids() == {item[0].id for item in items}
        store.close()
