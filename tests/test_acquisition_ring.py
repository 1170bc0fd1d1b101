"""FrameRing: preallocated slots, drop-oldest, spare slot, counters, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rope_inspect.acquisition.base import FrameInfo
from rope_inspect.acquisition.ring import FrameRing

SHAPE = (4, 6, 3)


def _write(ring: FrameRing, value: int) -> int:
    slot = ring.begin_write()
    slot[...] = value
    return ring.commit(FrameInfo(timestamp_ns=value, camera_frame_id=value))


def test_frames_come_out_in_order_with_their_info() -> None:
    ring = FrameRing(3, SHAPE)
    for v in (1, 2):
        _write(ring, v)
    first = ring.get(0)
    second = ring.get(0)
    assert first is not None and second is not None
    assert (first.index, first.camera_frame_id, int(first.image[0, 0, 0])) == (0, 1, 1)
    assert (second.index, second.camera_frame_id, int(second.image[0, 0, 0])) == (
        1,
        2,
        2,
    )
    assert ring.get(0) is None


def test_full_ring_drops_the_oldest_unread_frame_and_counts_it() -> None:
    ring = FrameRing(3, SHAPE)
    for v in range(5):
        _write(ring, v)
    stats = ring.stats()
    assert (stats.written, stats.dropped, stats.pending) == (5, 2, 3)
    got = [ring.get(0) for _ in range(3)]
    assert [f.camera_frame_id for f in got if f is not None] == [2, 3, 4]
    stats = ring.stats()
    assert stats.written == stats.read + stats.dropped + stats.pending


def test_writer_never_blocks_when_the_reader_holds_every_slot() -> None:
    ring = FrameRing(2, SHAPE)
    _write(ring, 1)
    _write(ring, 2)
    held = [ring.get(0), ring.get(0)]
    for v in (3, 4, 5):  # all go to the spare slot and are dropped
        _write(ring, v)
    assert ring.stats().dropped == 3
    assert all(f is not None and int(f.image[0, 0, 0]) in (1, 2) for f in held)
    assert [int(f.image[0, 0, 0]) for f in held if f is not None] == [1, 2]
    for frame in held:
        assert frame is not None
        ring.release(frame)
    _write(ring, 6)
    frame = ring.get(0)
    assert frame is not None and frame.camera_frame_id == 6


def test_frames_are_views_of_preallocated_slots() -> None:
    ring = FrameRing(2, SHAPE)
    addresses = set()
    for v in range(10):
        _write(ring, v)
        frame = ring.get(0)
        assert frame is not None
        assert frame.image.base is not None  # a view, not a fresh array
        addresses.add(frame.image.__array_interface__["data"][0])
        ring.release(frame)
    assert len(addresses) <= 2


def test_release_checks_its_argument() -> None:
    ring = FrameRing(2, SHAPE)
    _write(ring, 1)
    frame = ring.get(0)
    assert frame is not None
    ring.release(frame)
    with pytest.raises(ValueError, match="twice"):
        ring.release(frame)
    frame.image = np.zeros(SHAPE, np.uint8)
    with pytest.raises(ValueError, match="not come from this ring"):
        ring.release(frame)


def test_abort_returns_the_slot_and_begin_twice_is_an_error() -> None:
    ring = FrameRing(1, SHAPE)
    ring.begin_write()
    with pytest.raises(RuntimeError):
        ring.begin_write()
    ring.abort_write()
    _write(ring, 7)
    assert ring.stats().dropped == 0


def test_get_waits_and_close_wakes_the_reader() -> None:
    ring = FrameRing(2, SHAPE)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(ring.get(10.0)))
    reader.start()
    ring.close()
    reader.join(2.0)
    assert not reader.is_alive() and result == [None]


def test_concurrent_writer_and_reader_keep_the_invariant() -> None:
    ring = FrameRing(4, SHAPE)
    n = 2000
    seen: list[int] = []

    def reader() -> None:
        while True:
            frame = ring.get(1.0)
            if frame is None:
                return
            value = int(frame.image[0, 0, 0])
            assert (frame.image == value).all()  # never torn by the writer
            seen.append(frame.index)
            ring.release(frame)

    thread = threading.Thread(target=reader)
    thread.start()
    for v in range(n):
        _write(ring, v % 256)
    ring.close()
    thread.join(5.0)
    stats = ring.stats()
    assert stats.written == n
    assert stats.read + stats.dropped == n
    assert len(seen) == stats.read
    assert seen == sorted(set(seen))  # in order, none twice
