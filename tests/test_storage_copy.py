"""Defect store: `add` copies the arrays, or takes them over with copy=False."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rope_inspect.config import StoreConfig
from rope_inspect.storage import DefectStore, StoreView
from rope_inspect.storage.files import read_map16, read_rgb
from rope_inspect.storage.sample import sample_defect
from rope_inspect.storage.writer import PendingDefect

T0 = 1_700_000_000.0


def open_store(path: Path) -> tuple[DefectStore, list[PendingDefect]]:
    """A store that records every item it queues."""
    cfg = StoreConfig.model_validate(
        {"path": path, "retry_backoff_s": (0.01, 0.05), "save_full_frame": True}
    )
    store = DefectStore(cfg)
    queued: list[PendingDefect] = []
    real_put = store.queue.put

    def put(item: PendingDefect) -> None:
        queued.append(item)
        real_put(item)

    store.queue.put = put  # type: ignore[method-assign]
    return store, queued


def written(path: Path, record_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    view = StoreView.open(path)
    stored = view.get(record_id)
    view.close()
    assert stored is not None and stored.frame is not None
    return (
        read_rgb(path / stored.crop),
        read_map16(path / stored.map),
        read_rgb(path / stored.frame),
    )


@pytest.mark.parametrize("copy", [True, False])
def test_add_copies_unless_told_not_to(tmp_path: Path, copy: bool) -> None:
    rng = np.random.default_rng(3)
    record, crop, map_crop, frame = sample_defect(rng, T0, 4.0, "line-a", 1)
    map_crop = np.ascontiguousarray(map_crop, dtype=np.float32)
    before = crop.copy(), map_crop.copy(), frame.copy()
    store, queued = open_store(tmp_path)
    assert store.add(record, crop, map_crop, frame, copy=copy)
    (item,) = queued
    assert (item.crop is crop) is not copy
    assert (item.frame is frame) is not copy
    assert np.shares_memory(item.map_crop, map_crop) is not copy
    if copy:  # the caller may reuse its arrays at once
        crop[:] = 0
        map_crop[:] = 0
        frame[:] = 0
    assert store.close(timeout_s=30).written == 1
    got_crop, got_map, got_frame = written(tmp_path, record.id)
    assert np.array_equal(got_crop, before[0])
    assert np.abs(got_map - before[1]).max() < 1e-4
    # the full frame is a JPEG: near, not equal (a zeroed frame is far off)
    assert np.abs(got_frame.astype(np.int16) - before[2]).mean() < 4
