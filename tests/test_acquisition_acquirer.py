"""Acquirer: frames into the ring, counters, camera loss, reconnect, clean stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import FrameInfo, SourceFinished
from rope_inspect.acquisition.faults import FaultySource
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.acquisition.synthetic import SyntheticSource
from rope_inspect.config import (
    GenICamSourceConfig,
    LineConfig,
    ReplaySourceConfig,
    SyntheticSourceConfig,
)
from rope_inspect.errors import SourceError

SHAPE = (4, 6, 3)


class ScriptedSource:
    """Delivers the given camera frame ids, then ends."""

    name = "scripted"
    node_map = None

    def __init__(self, ids: list[int]) -> None:
        self._ids = iter(ids)
        self.frame_shape = SHAPE
        self.counters: dict[str, int] = {}

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        frame_id = next(self._ids, None)
        if frame_id is None:
            raise SourceFinished("script")
        slot[...] = frame_id % 256
        return FrameInfo(timestamp_ns=time.monotonic_ns(), camera_frame_id=frame_id)


def _synthetic() -> SyntheticSource:
    cfg = SyntheticSourceConfig(
        kind="synthetic", width=96, height=64, fps=200, px_per_mm=2.0, realtime=True
    )
    return SyntheticSource(cfg, LineConfig())


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _drain(ring: FrameRing) -> list[int]:
    ids = []
    while (frame := ring.get(0.5)) is not None:
        ids.append(frame.camera_frame_id)
        ring.release(frame)
    return ids


def test_frame_id_gaps_are_counted_and_restarts_are_not() -> None:
    ring = FrameRing(16, SHAPE)
    acquirer = Acquirer(ScriptedSource([1, 2, 3, 7, 8, 20, 1, 2]), ring)
    acquirer.start()
    assert acquirer.wait_finished(5.0)
    assert acquirer.stop(2.0)
    stats = acquirer.stats()
    assert (stats.frames, stats.frame_id_gaps, stats.gap_events) == (8, 3 + 11, 2)
    assert stats.finished and ring.closed
    assert _drain(ring) == [1, 2, 3, 7, 8, 20, 1, 2]


def test_ring_shape_must_match_the_source() -> None:
    with pytest.raises(ValueError, match="does not match"):
        Acquirer(ScriptedSource([1]), FrameRing(2, (5, 5, 3)))


def test_camera_loss_raises_fault_reconnects_with_backoff_and_resumes() -> None:
    source = FaultySource(_synthetic())
    source.open()
    opened_at: list[float] = []
    inner_open = source.open

    def timed_open() -> None:
        opened_at.append(time.monotonic())
        inner_open()

    source.open = timed_open  # type: ignore[method-assign]
    faults: list[tuple[bool, str]] = []
    ring = FrameRing(8, source.frame_shape)
    acquirer = Acquirer(
        source,
        ring,
        timeout_s=0.2,
        backoff_s=(0.05, 1.0),
        on_fault=lambda a, r: faults.append((a, r)),
    )
    threads_before = set(threading.enumerate())
    acquirer.start()
    _wait_for(lambda: acquirer.stats().frames >= 5)
    source.lose(failed_opens=3)
    _wait_for(lambda: acquirer.stats().reconnects == 1)
    frames_back = acquirer.stats().frames
    _wait_for(lambda: acquirer.stats().frames >= frames_back + 5)
    assert acquirer.stop(2.0)
    source.close()

    stats = acquirer.stats()
    assert (stats.losses, stats.reconnects, stats.connected) == (1, 1, True)
    assert [active for active, _ in faults] == [True, False]
    assert "unplugged" in faults[0][1]
    assert source.open_failures == 3 and len(opened_at) == 4
    gaps = np.diff(opened_at)
    assert all(
        gap >= 0.9 * want for gap, want in zip(gaps, (0.1, 0.2, 0.4), strict=True)
    )
    _wait_for(lambda: set(threading.enumerate()) <= threads_before, 5.0)


def test_timeouts_in_a_row_count_as_loss_and_errors_are_counted() -> None:
    source = FaultySource(_synthetic())
    source.open()
    ring = FrameRing(8, source.frame_shape)
    acquirer = Acquirer(
        source, ring, timeout_s=0.2, backoff_s=(0.01, 0.05), lost_after_timeouts=3
    )
    acquirer.start()
    _wait_for(lambda: acquirer.stats().frames >= 3)
    source.inject("error", 2)
    source.inject("skip", 2)
    _wait_for(lambda: acquirer.stats().skipped == 2)
    source.inject("timeout", 3)
    _wait_for(lambda: acquirer.stats().reconnects == 1)
    assert acquirer.stop(2.0)
    source.close()
    stats = acquirer.stats()
    assert stats.errors == 2 and stats.timeouts == 3 and stats.losses == 1


def test_stop_never_hangs_on_a_stuck_source() -> None:
    release = threading.Event()

    class StuckSource(ScriptedSource):
        def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
            release.wait(30.0)  # a driver call that ignores its timeout
            return None

    acquirer = Acquirer(StuckSource([]), FrameRing(2, SHAPE))
    acquirer.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert acquirer.stop(0.2) is False
    assert time.monotonic() - started < 5.0
    release.set()
    _wait_for(lambda: not acquirer.alive, 5.0)


def test_faulty_source_refuses_unknown_faults() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultySource(ScriptedSource([])).inject("meteor")


def test_lost_source_reports_source_error_on_open() -> None:
    source = FaultySource(ScriptedSource([1]))
    source.lose(failed_opens=1)
    with pytest.raises(SourceError, match="injected"):
        source.open()
    source.open()


def test_from_config_takes_camera_timeouts_and_never_loses_a_paced_source(
    tmp_path: Path,
) -> None:
    ring = FrameRing(2, SHAPE)
    camera_cfg = GenICamSourceConfig(
        kind="genicam",
        cti=tmp_path / "x.cti",
        timeout_s=0.3,
        reconnect_backoff_s=(0.2, 9.0),
        lost_after_timeouts=7,
    )
    camera = Acquirer.from_config(ScriptedSource([]), ring, camera_cfg)
    assert (camera.timeout_s, camera.backoff_s) == (0.3, (0.2, 9.0))
    assert camera.lost_after_timeouts == 7
    replay_cfg = ReplaySourceConfig(kind="replay", path=tmp_path, fps=0.2)
    replay = Acquirer.from_config(ScriptedSource([]), ring, replay_cfg)
    assert replay.timeout_s == 10.0 and replay.lost_after_timeouts == 0
