"""Image-quality check: the verdicts of the plain definitions, and no allocation per
frame once a frame buffer has been seen."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from rope_inspect.service.quality import ImageQualityCheck, QualityLimits

SHAPE = (90, 130, 3)  # not a multiple of the stride


def _plain_verdict(image: np.ndarray, limits: QualityLimits) -> str | None:
    """The definitions written out with sorting numpy: percentile, all(), std."""
    if image.shape != SHAPE or image.dtype != np.uint8:
        return "wrong_size"
    sample = image[:: limits.stride, :: limits.stride].astype(np.float64)
    saturated = (sample >= limits.saturated_level).all(axis=-1)
    if saturated.mean() >= limits.saturated_fraction:
        return "saturated"
    grey = sample.mean(axis=-1)
    if np.percentile(grey, 99, method="higher") < limits.black_p99:
        return "black"
    if grey.std() < limits.flat_std:
        return "flat"
    return None


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    rope = rng.integers(5, 30, SHAPE, dtype=np.uint8)
    rope[30:60] = rng.integers(120, 220, (30, SHAPE[1], 3), dtype=np.uint8)
    frames = [rope, np.zeros(SHAPE, np.uint8), np.full(SHAPE, 128, np.uint8)]
    for level in (2, 19, 21, 60):  # dark frames around the black level
        frames.append(rng.integers(0, level, SHAPE, dtype=np.uint8))
    for share in (0.3, 0.49, 0.51, 0.8):  # blinded over part of the frame
        frame = rope.copy()
        frame[:, : int(share * SHAPE[1])] = rng.integers(250, 256, (1, 1, 3))
        frames.append(frame)
    one_channel = rope.copy()
    one_channel[..., 0] = 255  # red saturated only: not a saturated pixel
    frames.append(one_channel)
    sparse = np.zeros(SHAPE, np.uint8)
    sparse[::4, ::4][:2, :3] = 200  # few bright pixels: still black
    frames.append(sparse)
    faint = np.full(SHAPE, 100, np.uint8)
    faint[::8] = 101  # varies by less than 1 grey level: flat
    frames.append(faint)
    return frames


def test_verdicts_match_the_plain_definitions() -> None:
    limits = QualityLimits()
    check = ImageQualityCheck(SHAPE, limits)
    verdicts = [check.check(frame) for frame in _frames()]
    assert verdicts == [_plain_verdict(frame, limits) for frame in _frames()]
    assert set(verdicts) == {None, "black", "saturated", "flat"}


def test_a_reused_buffer_is_read_again_each_frame() -> None:
    check = ImageQualityCheck(SHAPE)
    slot = np.empty(SHAPE, np.uint8)
    for frame in _frames():
        np.copyto(slot, frame)  # the ring reuses its slot arrays
        assert check.check(slot) == _plain_verdict(frame, QualityLimits())


@pytest.mark.parametrize("bad", [np.zeros((90, 129, 3), np.uint8), np.zeros(SHAPE)])
def test_wrong_size_or_type_is_refused(bad: np.ndarray) -> None:
    assert ImageQualityCheck(SHAPE).check(bad) == "wrong_size"


def test_no_allocation_per_frame_once_the_slots_were_seen() -> None:
    check = ImageQualityCheck(SHAPE)
    slots = [np.empty(SHAPE, np.uint8) for _ in range(3)]
    frames = _frames()
    for slot in slots:
        check.check(slot)
    peaks = []
    tracemalloc.start()
    try:
        for index, frame in enumerate(frames):
            slot = slots[index % len(slots)]
            np.copyto(slot, frame)
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            check.check(slot)
            peaks.append(tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()
    assert max(peaks) <= 128  # an int or a tuple at most; a view or buffer is more
