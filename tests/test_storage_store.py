"""Defect store: add and read back, queries, verdicts, reject states, retention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rope_inspect.config import StoreConfig
from rope_inspect.errors import StoreError
from rope_inspect.storage import (
    DefectQuery,
    DefectRecord,
    DefectStore,
    StoreView,
    crop_around,
    make_overlay,
)
from rope_inspect.storage.files import read_map16, read_rgb
from rope_inspect.storage.sample import sample_defect
from rope_inspect.storage.writer import PendingDefect

T0 = 1_700_000_000.0


def store_cfg(path: Path, **extra: object) -> StoreConfig:
    return StoreConfig.model_validate(
        {"path": path, "retry_backoff_s": (0.01, 0.05), **extra}
    )


def add_samples(store: DefectStore, count: int, seed: int = 1) -> list[DefectRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for n in range(count):
        record, crop, map_crop, frame = sample_defect(
            rng, T0 + 60 * n, 10.0 + 5 * n, "line-a" if n % 2 else "line-b", n
        )
        store.add(record, crop, map_crop, frame)
        records.append(record)
    return records


def test_add_and_read_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    record, crop, map_crop, frame = sample_defect(rng, T0, 12.5, "line-a", 7)
    store = DefectStore(store_cfg(tmp_path))
    store.add(record, crop, map_crop, frame)
    crop_before = crop.copy()
    crop[:] = 0  # the store keeps its own copy
    report = store.close()
    assert report.drained and report.written == 1 and not report.unwritten

    view = StoreView.open(tmp_path)
    stored = view.get(record.id)
    assert stored is not None
    for name in ("time", "epoch", "position_m", "bbox", "score", "crop_box", "line"):
        assert getattr(stored, name) == getattr(record, name)
    assert np.array_equal(read_rgb(tmp_path / stored.crop), crop_before)
    assert np.abs(read_map16(tmp_path / stored.map) - map_crop).max() < 1e-4
    assert read_rgb(tmp_path / stored.overlay).shape == crop.shape
    assert stored.frame is not None
    assert read_rgb(tmp_path / stored.frame).shape == frame.shape
    on_disk = json.loads((tmp_path / stored.json).read_text())
    assert DefectRecord.from_dict(on_disk) == stored
    view.close()


def test_queries_sort_filter_page(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path, save_full_frame=False))
    records = add_samples(store, 12)
    store.close()
    view = StoreView.open(tmp_path)

    newest = view.list_defects(DefectQuery(limit=5))
    assert newest.total == 12
    assert [r.id for r in newest.items] == [r.id for r in records[::-1][:5]]
    assert all(r.frame is None for r in newest.items)
    second = view.list_defects(DefectQuery(limit=5, offset=5))
    assert [r.id for r in second.items] == [r.id for r in records[::-1][5:10]]

    by_score = view.list_defects(DefectQuery(sort="score", limit=50)).items
    assert [r.score for r in by_score] == sorted(
        (r.score for r in records), reverse=True
    )
    by_pos = view.list_defects(DefectQuery(sort="position", descending=False)).items
    assert [r.position_m for r in by_pos] == sorted(
        r.position_m or 0.0 for r in records
    )

    window = DefectQuery(since=T0 + 120, until=T0 + 300, line="line-a")
    expected = {r.id for r in records[2:5] if r.line == "line-a"}
    assert {r.id for r in view.list_defects(window).items} == expected
    cut = sorted(r.score for r in records)[6]
    high = view.list_defects(DefectQuery(score_min=cut)).items
    assert {r.id for r in high} == {r.id for r in records if r.score >= cut}
    view.close()


def test_verdicts_and_counts(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path))
    records = add_samples(store, 4)
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path)

    marked = view.set_verdict(records[0].id, "defect", "alice")
    assert marked is not None and marked.verdict == "defect"
    assert marked.verdict_by == "alice" and marked.verdict_at
    view.set_verdict(records[1].id, "false_alarm", "bob")
    assert view.verdict_counts() == {
        "defect": 1,
        "false_alarm": 1,
        "none": 2,
        "total": 4,
    }
    only = view.list_defects(DefectQuery(verdict="false_alarm")).items
    assert [r.id for r in only] == [records[1].id]

    cleared = view.set_verdict(records[0].id, None, "alice")
    assert (
        cleared is not None and cleared.verdict is None and cleared.verdict_by is None
    )
    assert view.set_verdict("20200101T000000000000Z-00000000", "defect", "x") is None
    with pytest.raises(ValueError):
        view.set_verdict(records[2].id, "maybe", "alice")
    view.close()


def test_reject_state_updates_pending_and_written(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path))
    first, second = add_samples(store, 2)
    store.set_reject_state(first.id, "fired")
    store.close(timeout_s=30)
    store = DefectStore(store_cfg(tmp_path))
    store.set_reject_state(second.id, "late")
    with pytest.raises(ValueError):
        store.set_reject_state(second.id, "exploded")
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path)
    assert view.get(first.id).reject_state == "fired"  # type: ignore[union-attr]
    assert view.get(second.id).reject_state == "late"  # type: ignore[union-attr]
    view.close()


def test_reject_state_reaches_the_json_record_too(tmp_path: Path) -> None:
    """Index row and JSON record agree, so a re-index keeps the state."""
    store = DefectStore(store_cfg(tmp_path))
    first, second, third = add_samples(store, 3)
    store.close(timeout_s=30)
    store = DefectStore(store_cfg(tmp_path))
    store.set_reject_state(first.id, "fired")
    store.set_reject_state(second.id, "failed")  # the output did not switch
    store.close(timeout_s=30)
    for record, state in ((first, "fired"), (second, "failed"), (third, "scheduled")):
        stored = StoreView.open(tmp_path).get(record.id)
        assert stored is not None and stored.reject_state == state
        on_disk = json.loads((tmp_path / stored.json).read_text())
        assert on_disk["reject_state"] == state
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    store = DefectStore(store_cfg(tmp_path))  # rebuilt from the JSON records
    assert store.get(second.id).reject_state == "failed"  # type: ignore[union-attr]
    store.close()


def test_reject_state_of_the_defect_being_written_is_kept(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path))
    real_store_one = store.store_one

    def slow_store_one(item: PendingDefect) -> None:
        store.set_reject_state(item.record.id, "fired")  # arrives while in flight
        store.writer._housekeeping()
        real_store_one(item)

    store.store_one = slow_store_one  # type: ignore[method-assign]
    store.writer.sink = store
    (record,) = add_samples(store, 1)
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path)
    assert view.get(record.id).reject_state == "fired"  # type: ignore[union-attr]
    view.close()


def test_retention_removes_oldest_first(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path, max_bytes=1_000_000))
    records = add_samples(store, 16)
    store.close(timeout_s=60)
    assert store.removed_by_retention > 0

    view = StoreView.open(tmp_path)
    kept = view.list_defects(DefectQuery(limit=100, descending=False)).items
    n_removed = len(records) - len(kept)
    assert n_removed == store.removed_by_retention
    assert [r.id for r in kept] == [r.id for r in records[n_removed:]]
    for gone in records[:n_removed]:
        assert not list(tmp_path.rglob(f"{gone.id}.*"))
    used = sum(p.stat().st_size for p in (tmp_path / "defects").rglob("*.*"))
    index_bytes = (tmp_path / "index.sqlite").stat().st_size
    assert (
        used + index_bytes <= 1_000_000 + (tmp_path / "index.sqlite-wal").stat().st_size
    )
    view.close()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path))
    with pytest.raises(StoreError, match="in use"):
        DefectStore(store_cfg(tmp_path))
    store.close()


def test_bad_arrays_refused_and_closed_store_drops(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    record, crop, map_crop, _frame = sample_defect(rng, T0, 1.0)
    store = DefectStore(store_cfg(tmp_path))
    with pytest.raises(ValueError):
        store.add(record, crop.astype(np.float32), map_crop)
    with pytest.raises(ValueError):
        store.add(record, crop, map_crop[:10])
    store.close()
    assert store.add(record, crop, map_crop) is False
    assert store.status().dropped == 1


def test_status_counts(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path))
    add_samples(store, 3)
    store.close(timeout_s=30)
    status = store.status()
    assert status.written == 3 and status.pending == 0 and not status.alarm
    assert status.bytes_used > 0 and status.write_errors == 0


def test_make_overlay_and_crop_around() -> None:
    crop = np.full((40, 50, 3), 120, np.uint8)
    amap = np.zeros((40, 50), np.float32)
    amap[10:20, 10:20] = 0.9
    overlay = make_overlay(crop, amap, threshold=0.5)
    assert overlay.shape == crop.shape
    assert np.array_equal(overlay[35, 45], crop[35, 45])  # zero map: crop unchanged
    assert not np.array_equal(overlay[15, 15], crop[15, 15])

    frame = np.zeros((224, 900, 3), np.uint8)
    amap = np.zeros((224, 900), np.float32)
    cut, cut_map, box = crop_around(frame, amap, (880, 5, 895, 20), 32, 256)
    assert box == (644, 0, 900, 224)  # shifted inside, height limited by the frame
    assert cut.shape == (224, 256, 3) and cut_map.shape == (224, 256)


def test_histograms(tmp_path: Path) -> None:
    store = DefectStore(store_cfg(tmp_path, save_full_frame=False))
    records = add_samples(store, 10)
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path)
    everything = DefectQuery()
    for hist in (
        view.per_metre(everything),
        view.per_hour(everything),
        view.score_histogram(everything),
    ):
        assert int(hist.counts.sum()) == len(records)
        assert len(hist.edges) == len(hist.counts) + 1
    positions = view.per_metre(everything)
    assert positions.edges[0] <= min(r.position_m for r in records)  # type: ignore[type-var]
    view.close()


def test_writer_survives_a_failing_defect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DefectStore(store_cfg(tmp_path))
    real = store.store_one
    calls = {"n": 0}

    def first_fails(item: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("a bug")
        real(item)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "store_one", first_fails)
    records = add_samples(store, 2)
    report = store.close(timeout_s=30)
    assert report.drained and store.status().failed == 1
    assert StoreView.open(tmp_path).get(records[1].id) is not None
