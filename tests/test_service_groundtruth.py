"""Ground-truth scorers: the synthetic line's recall and false alarms per 100 m, the
mask replay's found / missed / false alarms; both stay flat on long runs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.acquisition.base import TruthDefect
from rope_inspect.frame import Frame
from rope_inspect.service.groundtruth import (
    FoundDefect,
    SyntheticScorer,
    mask_path_for,
)
from rope_inspect.service.groundtruth_masks import SETTLE_FRAMES, MaskScorer


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
        assert len(scorer.truth) <= 12 and len(scorer.found) <= 16, i
    report = scorer.report()
    cuts = report["per_type"]["cut"]
    assert cuts["seen"] == report["defects_rendered_seen"] == 400
    assert cuts["found"] == 200 and cuts["missed"] == 200
    assert report["false_alarms"] == 100 and report["stored_defects"] == 300


def test_synthetic_scorer_waits_for_inspected_frames_before_settling() -> None:
    """Skipped frames (a lighting failure) do not settle a defect the decision still
    has open: it is emitted on the next inspected frame and counts as found."""
    scorer = SyntheticScorer(mm_per_px=1.0, axis="horizontal", tolerance_m=0.01)
    scorer.observe(_frame(0, 0.25, [_truth(1, "cut", 0.25)]), inspected=True)
    for i in range(1, 60):  # 6 m of rope go by uninspected
        scorer.observe(_frame(i, 0.25 + 0.1 * i), inspected=False)
    scorer.observe(_frame(60, 6.25), inspected=True)
    scorer.add(FoundDefect(0, (90, 40, 110, 60), 0.25, 0.02))
    for i in range(61, 200):  # then far enough for everything to settle
        scorer.observe(_frame(i, 0.25 + 0.1 * i), inspected=True)
    report = scorer.report()
    assert report["per_type"]["cut"]["found"] == 1 and report["false_alarms"] == 0
    assert not scorer.truth and not scorer.found, "settled into counts"


def test_mask_scorer_waits_for_inspected_frames_before_scoring(tmp_path: Path) -> None:
    root = tmp_path / "rope"
    names = _mask_replay(root)
    scorer = MaskScorer(root / "test")
    cut = str(root / "test" / names[0])
    scorer.observe(_frame(0, 0.0, name=cut), True)
    for i in range(1, 100):  # frames the engine failed on
        scorer.observe(_frame(i, 0.0, name=cut), False)
    scorer.add(FoundDefect(0, (110, 50, 130, 70), 0.0, 0.02))
    report = scorer.report()
    assert report["per_type"]["cut"] == {"images": 1, "found": 1, "missed": 0}
    assert report["images_not_inspected_count"] == 99
    assert len(report["images_not_inspected"]) == 99  # named up to 100
