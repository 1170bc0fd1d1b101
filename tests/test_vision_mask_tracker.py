"""Rope mask tracker: first mask synchronous, refreshes off the hot path, edge check."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.config import MaskConfig
from rope_inspect.vision.mask_tracker import EdgeProbe, RopeMaskTracker
from rope_inspect.vision.rope_mask import RopeMaskResult

H, W = 160, 480
DATA = Path(__file__).resolve().parents[1] / "../shared/data/mvtec3d-rope"


def _frame(top: int, bottom: int, seed: int = 0, slope: float = 0.0) -> np.ndarray:
    """Bright textured rope band on a dark noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.normal(45, 8, (H, W)).clip(0, 255)
    rows = np.arange(H)[:, None]
    shift = np.arange(W)[None, :] * slope
    band = (rows >= top + shift) & (rows < bottom + shift)
    image[band] = rng.normal(170, 25, int(band.sum())).clip(0, 255)
    return np.repeat(image.astype(np.uint8)[:, :, None], 3, axis=2)


class CountingSegmenter:
    """Threshold segmentation that records how often and on which thread it ran."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.threads: list[int] = []
        self.fail = fail

    def __call__(self, image: np.ndarray) -> RopeMaskResult:
        self.calls += 1
        self.threads.append(threading.get_ident())
        if self.fail and self.calls > 1:
            raise ValueError("segmentation failed")
        gray = image[:, :, 0].astype(np.float32)
        mask = cv2.blur(gray, (9, 9)) > 107
        return RopeMaskResult(mask=mask)


def _tracker(segment: CountingSegmenter, **cfg: object) -> RopeMaskTracker:
    values: dict[str, object] = {
        "refresh_every": 1000,
        "edge_shift_px": 6,
        "envelope_margin_px": 10,
        **cfg,
    }
    return RopeMaskTracker(MaskConfig.model_validate(values), segment=segment)


def _feed(tracker: RopeMaskTracker, image: np.ndarray) -> np.ndarray:
    envelope = tracker.update(image)
    assert tracker.wait_idle(10)
    return envelope


def test_first_frame_is_masked_synchronously_on_the_caller_thread() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment)
    envelope = tracker.update(_frame(60, 100))
    try:
        assert segment.calls == 1 and segment.threads == [threading.get_ident()]
        rows = np.flatnonzero(envelope[:, W // 2])
        assert rows[0] == pytest.approx(50, abs=5) and rows[-1] == pytest.approx(
            109, abs=5
        )
        assert not envelope.flags.writeable
    finally:
        tracker.close()


def test_periodic_refresh_runs_in_the_worker_only_when_due() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment, refresh_every=5)
    image = _frame(60, 100)
    try:
        calls = []
        for _ in range(12):
            _feed(tracker, image)
            calls.append(segment.calls)
        assert calls == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3]
        assert threading.get_ident() not in segment.threads[1:]
        assert tracker.edge_refreshes == 0
    finally:
        tracker.close()


def test_envelope_is_the_same_object_between_refreshes() -> None:
    tracker = _tracker(CountingSegmenter())
    try:
        first = _feed(tracker, _frame(60, 100))
        for seed in range(1, 6):
            assert _feed(tracker, _frame(60, 100, seed=seed)) is first
        assert tracker.refreshes == 1 and tracker.version == 1
    finally:
        tracker.close()


def test_edge_move_triggers_an_early_refresh() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment)
    try:
        first = _feed(tracker, _frame(60, 100))
        _feed(tracker, _frame(62, 102, seed=1))  # small move: keep the mask
        assert segment.calls == 1 and tracker.last_shift_px < 6

        _feed(tracker, _frame(76, 116, seed=2))  # moved 16 px: refresh now
        assert tracker.last_shift_px == pytest.approx(16, abs=3)
        assert segment.calls == 2 and tracker.edge_refreshes == 1

        moved = _feed(tracker, _frame(76, 116, seed=3))
        assert moved is not first and tracker.version == 2
        rows = np.flatnonzero(moved[:, W // 2])
        assert rows[0] == pytest.approx(66, abs=5)
        for seed in range(4, 8):  # rope stays at its new place: no more refreshes
            _feed(tracker, _frame(76, 116, seed=seed))
        assert segment.calls == 2 and tracker.edge_refreshes == 1
    finally:
        tracker.close()


def test_a_local_bulge_does_not_move_the_edges() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment)
    try:
        _feed(tracker, _frame(60, 100))
        bulge = _frame(60, 100, seed=1)
        bulge[40:60, 200:260] = 200  # a defect sticking out over 60 px of the rope
        _feed(tracker, bulge)
        assert segment.calls == 1
    finally:
        tracker.close()


def test_lost_rope_triggers_a_refresh() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment)
    try:
        _feed(tracker, _frame(60, 100))
        empty = np.full((H, W, 3), 45, np.uint8)
        _feed(tracker, empty)
        assert tracker.last_shift_px == float("inf") and segment.calls == 2
    finally:
        tracker.close()


def test_failed_refresh_keeps_the_current_envelope() -> None:
    segment = CountingSegmenter(fail=True)
    tracker = _tracker(segment, refresh_every=2)
    try:
        first = _feed(tracker, _frame(60, 100))
        for seed in range(1, 4):
            assert _feed(tracker, _frame(60, 100, seed=seed)) is first
        assert tracker.refresh_errors >= 1
    finally:
        tracker.close()


def test_close_stops_the_worker() -> None:
    tracker = _tracker(CountingSegmenter())
    tracker.update(_frame(60, 100))
    names = [t.name for t in threading.enumerate()]
    assert "rope-mask" in names
    tracker.close()
    assert tracker._thread is None


def test_edge_probe_reads_a_vertical_rope() -> None:
    image = np.ascontiguousarray(_frame(60, 100).transpose(1, 0, 2))
    mask = image[:, :, 0] > 107
    probe = EdgeProbe(image.shape, "vertical", 4)
    reference = probe.reference(image, mask)
    assert reference is not None
    moved = np.roll(image, 12, axis=1)
    assert probe.shift_px(moved, reference) == pytest.approx(12, abs=2)


def test_default_segmenter_is_grabcut() -> None:
    tracker = RopeMaskTracker(
        MaskConfig.model_validate({"envelope_margin_px": 8, "refresh_every": 3})
    )
    try:
        envelope = _feed(tracker, _frame(60, 100))
        assert envelope[80].all() and not envelope[:40].any()
        for seed in range(1, 5):
            _feed(tracker, _frame(60, 100, seed=seed))
        assert tracker.refreshes == 2 and tracker.refresh_errors == 0
    finally:
        tracker.close()


@pytest.mark.data
def test_real_rope_edge_check() -> None:
    files = sorted((DATA / "train" / "good").glob("*.png"))[:1]
    if not files:
        pytest.skip(f"real rope photographs not found under {DATA}")
    image = np.asarray(cv2.imread(str(files[0])))[:, :, ::-1].copy()
    tracker = RopeMaskTracker(MaskConfig.model_validate({}))
    try:
        _feed(tracker, image)
        _feed(tracker, image)
        assert tracker.last_shift_px < 1.0 and tracker.refreshes == 1
        _feed(tracker, np.roll(image, 14, axis=0))
        assert tracker.last_shift_px == pytest.approx(14, abs=3)
        assert tracker.edge_refreshes == 1
    finally:
        tracker.close()


def test_on_frame_mode_keeps_the_mask_of_a_rope_in_the_same_place() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment, refresh_mode="on_frame")
    try:
        first = tracker.update(_frame(60, 100))
        assert "rope-mask" not in [t.name for t in threading.enumerate()]
        for seed in range(1, 6):  # separate photographs, rope in the same place
            assert tracker.update(_frame(61, 101, seed=seed)) is first
        assert segment.calls == 1 and tracker.refreshes == 1
        assert segment.threads == [threading.get_ident()]
    finally:
        tracker.close()


def test_on_frame_mode_masks_a_moved_rope_on_that_very_frame() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment, refresh_mode="on_frame")
    try:
        first = tracker.update(_frame(60, 100))
        moved = tracker.update(_frame(90, 130, seed=1))  # no frame late
        assert moved is not first and segment.calls == 2
        assert tracker.edge_refreshes == 1 and tracker.version == 2
        rows = np.flatnonzero(moved[:, W // 2])
        assert rows[0] == pytest.approx(80, abs=5)
        assert rows[-1] == pytest.approx(139, abs=5)
        assert tracker.update(_frame(90, 130, seed=2)) is moved
        back = tracker.update(_frame(60, 100, seed=3))
        assert back is not moved and segment.calls == 3
        assert np.array_equal(back[:, W // 2], first[:, W // 2])
    finally:
        tracker.close()


def test_on_frame_mode_without_an_edge_reference_masks_every_frame() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment, refresh_mode="on_frame")
    flat = np.full((H, W, 3), 45, np.uint8)
    flat[60:100] = 47  # a band GrabCut may find but too faint to check edges on
    try:
        for _ in range(3):
            tracker.update(flat)
        assert segment.calls == 3 and tracker.edge_refreshes == 0
    finally:
        tracker.close()


def test_on_frame_mode_refreshes_when_due() -> None:
    segment = CountingSegmenter()
    tracker = _tracker(segment, refresh_mode="on_frame", refresh_every=3)
    try:
        for seed in range(7):
            tracker.update(_frame(60, 100, seed=seed))
        assert segment.calls == 3 and tracker.edge_refreshes == 0
    finally:
        tracker.close()


def test_edge_check_allocates_nothing_once_warm() -> None:
    import tracemalloc

    image = _frame(60, 100)
    probe = EdgeProbe(image.shape, "horizontal", 4)
    reference = probe.reference(image, image[:, :, 0] > 107)
    assert reference is not None
    moved = _frame(70, 110, seed=1)
    for _ in range(3):
        probe.shift_px(moved, reference)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        shift = probe.shift_px(moved, reference)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert shift == pytest.approx(10, abs=3)
    assert peak <= 256  # a Python float and int or two; the old check took 4.5 KB
