"""Crash consistency of the defect store: kill -9 during writes, then reopen.

A child process adds defects in a loop much faster than the disk takes them, and is
killed with SIGKILL while its writer thread is busy. On reopen, recovery must leave no
temp files, no rows without files, no files without rows, and report the lost tail.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from rope_inspect.config import StoreConfig
from rope_inspect.storage import DefectQuery, DefectStore
from rope_inspect.storage.files import TEMP_PREFIX, read_map16, read_rgb
from rope_inspect.storage.index import DefectIndex
from rope_inspect.storage.journal import JOURNAL, read_journal
from rope_inspect.storage.sample import sample_defect

CHILD = textwrap.dedent(
    """
    import dataclasses, sys, time
    import numpy as np
    from rope_inspect.config import StoreConfig
    from rope_inspect.storage import DefectRecord, DefectStore
    from rope_inspect.storage.sample import sample_defect

    store = DefectStore(StoreConfig.model_validate(
        {"path": sys.argv[1], "pending_limit": 30}))
    rng = np.random.default_rng(int(sys.argv[2]))
    items = [sample_defect(rng, time.time(), 1.0) for _ in range(4)]
    n = 0
    while True:
        record, crop, map_crop, frame = items[n % 4]
        fresh = DefectRecord.create(
            line="kill", position_m=n * 0.1, frame_index=n, bbox=record.bbox,
            area_px=record.area_px, area_mm2=record.area_mm2, score=record.score,
            epoch=time.time(), crop_box=record.crop_box, threshold=0.5)
        print(fresh.id, flush=True)
        store.add(fresh, crop, map_crop, frame)
        n += 1
        time.sleep(0.002)
    """
)


def _indexed_rows(root: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM defects").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _manifest_size(root: Path) -> int:
    """How many defects the pending journal names (written while the child runs)."""
    state = read_journal(root / JOURNAL)
    return len(state.entries) if state is not None else 0


def _run_and_kill(root: Path, seed: int, min_rows: int) -> list[str]:
    """Start the child, wait until rows are written while many wait; SIGKILL it.

    Returns the ids the child added (it prints each before adding it)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        _indexed_rows(root) < min_rows or _manifest_size(root) < 10
    ):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return out.split()


def _check_consistent(root: Path) -> set[str]:
    """No temp files; every row has readable files; every file belongs to a row."""
    assert not [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    index = DefectIndex(root / "index.sqlite")
    records = list(index.iter_records())
    index.close()
    referenced = set()
    for record in records:
        read_rgb(root / record.crop)
        read_rgb(root / record.overlay)
        read_map16(root / record.map)
        json.loads((root / record.json).read_text())
        referenced |= {str(root / p) for p in record.file_paths()}
    on_disk = {str(p) for p in (root / "defects").rglob("*") if p.is_file()}
    assert on_disk == referenced
    return {r.id for r in records}


def test_kill_during_writes_then_reopen(tmp_path: Path) -> None:
    cfg = StoreConfig.model_validate({"path": tmp_path})
    added: list[str] = []
    for round_ in range(3):
        added += _run_and_kill(tmp_path, round_, min_rows=8 * (round_ + 1))
        store = DefectStore(cfg)
        report = store.recovery
        indexed = store.index.ids()
        store.close()

        lost = {x.id for x in report.lost}
        assert lost, "the child was killed with defects queued: a lost tail is expected"
        assert not lost & indexed
        assert lost <= set(added) and indexed <= set(added)
        assert {x.reason for x in report.lost} <= {"in_flight", "partial"}
        assert all(
            x.position_m is not None for x in report.lost if x.reason == "in_flight"
        )
        assert _check_consistent(tmp_path) == indexed
        assert not (tmp_path / "pending.json").exists()


def test_recovery_repairs_each_kind_of_leftover(tmp_path: Path) -> None:
    cfg = StoreConfig.model_validate({"path": tmp_path})
    rng = np.random.default_rng(5)
    items = [sample_defect(rng, 1.7e9 + n, float(n)) for n in range(4)]
    store = DefectStore(cfg)
    for item in items:
        store.add(*item)
    store.close()
    view = DefectIndex(tmp_path / "index.sqlite")
    stored = {r.id: r for r in view.iter_records()}
    ids = [item[0].id for item in items]
    view.delete(ids[0])  # complete files, row lost -> re-indexed
    view.delete(ids[1])
    (tmp_path / stored[ids[1]].json).unlink()  # cut off before its JSON -> partial
    (tmp_path / stored[ids[2]].crop).unlink()  # row whose file went missing -> damaged
    view.close()
    day = (tmp_path / stored[ids[3]].crop).parent
    (day / f"{TEMP_PREFIX}x.crop.png.1234").write_bytes(b"half")
    ghost = items[3][0].to_dict() | {"id": "20240101T000000000000Z-0000beef"}
    (tmp_path / "pending.json").write_text(json.dumps({"pending": [ghost]}))

    store = DefectStore(cfg)
    report = store.recovery
    assert report.reindexed == [ids[0]]
    assert report.temp_removed == 1
    reasons = {x.id: x.reason for x in report.lost}
    assert reasons == {ids[1]: "partial", ids[2]: "damaged", ghost["id"]: "in_flight"}
    page = store.list_defects(DefectQuery(limit=10))
    assert {r.id for r in page.items} == {ids[0], ids[3]}
    store.close()
    assert _check_consistent(tmp_path) == {ids[0], ids[3]}
    again = DefectStore(cfg)
    assert again.recovery.clean
    again.close()


def test_lost_index_is_rebuilt_from_json_records(tmp_path: Path) -> None:
    cfg = StoreConfig.model_validate({"path": tmp_path})
    rng = np.random.default_rng(8)
    store = DefectStore(cfg)
    ids = []
    for n in range(3):
        item = sample_defect(rng, 1.7e9 + n, float(n))
        store.add(*item)
        ids.append(item[0].id)
    store.close()
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    store = DefectStore(cfg)
    assert sorted(store.recovery.reindexed) == sorted(ids)
    assert not store.recovery.lost
    store.close()
    assert _check_consistent(tmp_path) == set(ids)
