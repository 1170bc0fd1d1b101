"""The daemon's small parts: image-quality check, fault state,
the monitored source and its lossless replay gate."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rope_inspect.acquisition.base import FrameInfo
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.service.capture import MonitoredSource
from rope_inspect.service.faults import HISTORY, FaultState
from rope_inspect.service.notify import HealthMonitor
from rope_inspect.service.quality import ImageQualityCheck
from rope_inspect.service.stats import RateMeter, StageTimes

SHAPE = (64, 96, 3)


def _rope_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(5, 30, SHAPE, dtype=np.uint8)
    image[20:44] = rng.integers(120, 220, (24, SHAPE[1], 3), dtype=np.uint8)
    return image


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros(SHAPE, np.uint8), "black"),
        (np.full(SHAPE, 3, np.uint8), "black"),
        (np.full(SHAPE, 255, np.uint8), "saturated"),
        (np.full(SHAPE, 128, np.uint8), "flat"),
        (np.zeros((32, 96, 3), np.uint8), "wrong_size"),
        (np.zeros(SHAPE, np.float32), "wrong_size"),
    ],
)
def test_quality_check_refuses_uninspectable_frames(image, reason) -> None:
    assert ImageQualityCheck(SHAPE).check(image) == reason


def test_quality_check_passes_a_rope_on_dark_background() -> None:
    check = ImageQualityCheck(SHAPE)
    assert check.check(_rope_image()) is None
    half_blinded = _rope_image()
    half_blinded[:, :30] = 255
    assert check.check(half_blinded) is None


class RecordingOutput:
    def __init__(self, fail: bool = False) -> None:
        self.levels: list[bool] = []
        self.fail = fail

    def set(self, active: bool) -> None:
        if self.fail:
            raise OSError("coil write failed")
        self.levels.append(active)


def test_fault_output_raised_by_first_condition_cleared_by_last() -> None:
    output = RecordingOutput()
    changes: list[bool] = []
    faults = FaultState([output], on_change=lambda level, _: changes.append(level))

    faults.set("camera_lost", True, "unplugged")
    faults.set("engine", True, "NaN")
    faults.set("camera_lost", True, "still unplugged")
    assert output.levels == [True]
    assert faults.conditions() == {"camera_lost": "still unplugged", "engine": "NaN"}

    faults.set("camera_lost", False)
    assert output.levels == [True]
    faults.set("engine", False)
    faults.set("engine", False)
    assert output.levels == [True, False]
    assert changes == [True, False]
    assert faults.raised_count == 1
    faults.drive()
    assert output.levels == [True, False, False]


def test_a_broken_fault_output_is_counted_not_raised() -> None:
    good, broken = RecordingOutput(), RecordingOutput(fail=True)
    faults = FaultState([broken, good])
    faults.set("engine", True, "error")
    assert good.levels == [True]
    assert faults.output_errors == 1


def test_fault_history_keeps_the_last_changes_only() -> None:
    faults = FaultState([])
    for index in range(HISTORY + 500):  # a camera that flaps for months
        faults.set("camera", index % 2 == 0, f"loss {index}")
    assert len(faults.history) == HISTORY
    assert faults.history[-1] == ("camera", False, f"loss {HISTORY + 499}")
    assert faults.raised_count == (HISTORY + 500) // 2


class CountingSource:
    name = "counting"

    def __init__(self) -> None:
        self.count = 0

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return SHAPE

    @property
    def node_map(self) -> None:
        return None

    @property
    def counters(self) -> dict[str, int]:
        return {}

    def open(self) -> None:
        pass

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        slot[...] = self.count % 256
        self.count += 1
        return FrameInfo(timestamp_ns=0, camera_frame_id=self.count)

    def close(self) -> None:
        pass


def test_monitored_source_beats_and_lossless_gate_prevents_drops() -> None:
    health = HealthMonitor(stuck_after_s=5.0)
    source = MonitoredSource(CountingSource(), health, lossless=True)
    ring = FrameRing(3, SHAPE)
    source.ring = ring

    def write_one() -> None:
        slot = ring.begin_write()
        info = source.read_into(slot, 1.0)
        assert info is not None
        ring.commit(info)

    for _ in range(2):
        write_one()  # two frames fit beside the one being written
    blocked = threading.Thread(target=write_one)
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # third frame waits: no free slot for a fourth

    frame = ring.get(1.0)
    assert frame is not None
    ring.release(frame)
    blocked.join(2.0)
    assert not blocked.is_alive()
    assert ring.stats().dropped == 0
    assert health.snapshot()["acquisition"]["beats"] >= 3
    assert source.waits > 0


def test_rate_meter_and_stage_times() -> None:
    now = [0.0]
    meter = RateMeter(window_s=2.0, clock=lambda: now[0])
    assert meter.value == 0.0
    for second in range(6):
        now[0] = float(second)
        meter.sample(10 * second)  # 10 frames per second
    assert meter.value == pytest.approx(10.0)
    now[0] = 6.0
    meter.sample(50)  # a stall: only 0 frames in the last second
    assert meter.value < 10.0

    seen: list[tuple[str, float]] = []
    times = StageTimes(sink=lambda stage, s: seen.append((stage, s)))
    times.observe("engine", 0.010)
    times.observe("engine", 0.030)
    assert 10.0 < times.average_ms()["engine"] < 30.0
    assert times.max_ms()["engine"] == pytest.approx(30.0)
    assert [stage for stage, _ in seen] == ["engine", "engine"]
