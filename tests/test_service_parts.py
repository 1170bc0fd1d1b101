"""The daemon's small parts: image-quality check, fault state, ground-truth scoring,
the monitored source and its lossless replay gate."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.acquisition.base import FrameInfo, TruthDefect
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.frame import Frame
from rope_inspect.service.capture import MonitoredSource
from rope_inspect.service.faults import FaultState
from rope_inspect.service.groundtruth import (
    FoundDefect,
    SyntheticScorer,
    mask_path_for,
)
from rope_inspect.service.groundtruth_masks import SETTLE_FRAMES, MaskScorer
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


def _frame(index: int, position: float, truth=(), name=None) -> Frame:
    return Frame(
        index=index,
        timestamp_ns=0,
        camera_frame_id=index,
        image=np.zeros((100, 200, 3), np.uint8),
        position_m=position,
        source_name=name,
        truth=tuple(truth),
    )


def _truth(defect_id: int, kind: str, position: float) -> TruthDefect:
    return TruthDefect(
        defect_id, kind, position, (90, 40, 110, 60), np.ones((20, 20), bool)
    )


FOUND_AFTER = {
    3: FoundDefect(2, (90, 40, 110, 60), 0.255, 0.02),  # cut 1: found
    6: FoundDefect(6, (90, 40, 110, 60), 0.63, 0.02),  # fuzz 2: 0.03 off
    7: FoundDefect(7, (0, 0, 10, 10), 0.45, 0.01),  # nothing there
}


def test_synthetic_scorer_recall_per_type_and_false_alarms_per_100m() -> None:
    scorer = SyntheticScorer(mm_per_px=1.0, axis="horizontal", tolerance_m=0.01)
    # frames 0.2 m wide (200 px at 1 mm/px), every 0.1 m: 1.0 m + 0.1 m covered
    for i in range(10):
        truth = []
        if i in (2, 3):
            truth.append(_truth(1, "cut", 0.25))
        if i == 6:
            truth.append(_truth(2, "fuzz", 0.6))
        if i == 8:
            truth.append(_truth(3, "cut", 0.8))
        scorer.observe(_frame(i, 0.1 * i, truth), inspected=i != 8)
        if i in FOUND_AFTER:  # the decision emits a defect after its frames
            scorer.add(FOUND_AFTER[i])
    report = scorer.report()

    assert report["rope_inspected_m"] == pytest.approx(1.1)
    assert report["per_type"]["cut"] == {
        "seen": 1,
        "found": 1,
        "missed": 0,
        "recall": 1.0,
    }
    assert report["per_type"]["fuzz"]["found"] == 0
    assert (
        report["defects_in_inspected_frames"] == 2
    )  # defect 3 only in a skipped frame
    assert report["false_alarms"] == 2
    assert report["false_alarms_per_100m"] == pytest.approx(2 / 1.1 * 100, rel=1e-3)


def test_mask_path_follows_the_mvtec_layout() -> None:
    image = Path("/d/rope/test/cut/005.png")
    assert mask_path_for(image) == Path("/d/rope/ground_truth/cut/005_mask.png")
    assert mask_path_for(Path("/d/rope/test/good/000.png")) is None


def _mask_replay(root: Path) -> list[str]:
    """Two defective and two good photographs with their masks; their names."""
    for kind, name in (
        ("cut", "001"),
        ("open", "002"),
        ("good", "003"),
        ("good", "004"),
    ):
        folder = root / "test" / kind
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{name}.png"), np.zeros((100, 200, 3), np.uint8))
        if kind != "good":
            mask = np.zeros((100, 200), np.uint8)
            mask[40:60, 100:120] = 255
            (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "ground_truth" / kind / f"{name}_mask.png"), mask)
    return ["cut/001.png", "open/002.png", "good/003.png", "good/004.png"]


def test_mask_scorer_found_missed_and_false_alarms(tmp_path: Path) -> None:
    root = tmp_path / "rope"
    names = _mask_replay(root)
    scorer = MaskScorer(root / "test")
    for index, name in enumerate(names):
        scorer.observe(_frame(index, 0.0, name=str(root / "test" / name)), True)
    scorer.add(FoundDefect(0, (110, 50, 130, 70), 0.0, 0.02))  # on the cut mask
    scorer.add(FoundDefect(0, (0, 0, 10, 10), 0.0, 0.01))  # off the mask
    scorer.add(FoundDefect(1, (0, 0, 10, 10), 0.0, 0.01))  # open missed
    scorer.add(FoundDefect(3, (5, 5, 15, 15), 0.0, 0.01))  # good image alarm
    report = scorer.report()

    assert report["defects_found"] == 1
    assert report["defects_missed"] == 1
    assert report["per_type"]["cut"]["found"] == 1
    assert report["good_images"] == 2
    assert report["good_images_with_false_alarm"] == 1
    assert report["false_alarms_off_mask_on_defective"] == 2


def test_mask_scorer_stays_flat_on_a_looping_replay(tmp_path: Path) -> None:
    """Every pass counts again; frames long behind are scored and dropped."""
    root = tmp_path / "rope"
    names = _mask_replay(root)
    scorer = MaskScorer(root / "test")
    for index in range(400):  # 100 passes over the four photographs
        name = names[index % 4]
        inspected = index != 7  # one frame not inspected (an engine error)
        scorer.observe(_frame(index, 0.0, name=str(root / "test" / name)), inspected)
        if name.startswith("cut") and index % 8 == 0:  # every other cut pass: found
            scorer.add(FoundDefect(index, (110, 50, 130, 70), 0.0, 0.02))
        assert len(scorer.frames) <= SETTLE_FRAMES + 1
    report = scorer.report()
    assert report["images_inspected"] == 399
    assert report["per_type"]["cut"] == {"images": 100, "found": 50, "missed": 50}
    assert report["per_type"]["open"]["missed"] == 100
    assert report["good_images"] == 199 and report["false_alarms_on_good"] == 0
    assert report["images_not_inspected_count"] == 1


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


def test_synthetic_scorer_stays_flat_on_a_long_line_and_counts_the_same() -> None:
    """Records the rope has carried far past are folded into counts as it goes."""
    scorer = SyntheticScorer(mm_per_px=1.0, axis="horizontal", tolerance_m=0.01)
    # 0.2 m frames every 0.1 m; a cut every 0.5 m, each seen in two frames; every
    # other one found; a false alarm every 2 m
    for i in range(2000):
        position = 0.1 * i
        truth = []
        for k in (i // 5 - 1, i // 5):
            centre = 0.5 * k + 0.25
            if k >= 0 and abs(centre - position) < 0.1:
                truth.append(_truth(k, "cut", centre))
        scorer.observe(_frame(i, position, truth), inspected=True)
        if i % 5 == 4 and (i // 5) % 2 == 0:
            centre = 0.5 * (i // 5) + 0.25
            scorer.add(FoundDefect(i, (90, 40, 110, 60), centre + 0.004, 0.02))
        if i % 20 == 10:
            scorer.add(FoundDefect(i, (0, 0, 10, 10), position + 0.05, 0.01))
        assert len(scorer.truth) <= 4 and len(scorer.found) <= 8, i
    report = scorer.report()
    cuts = report["per_type"]["cut"]
    assert cuts["seen"] == report["defects_rendered_seen"] == 400
    assert cuts["found"] == 200 and cuts["missed"] == 200
    assert report["false_alarms"] == 100 and report["stored_defects"] == 300
