"""Rope positions (speed, encoder) and merging one defect across consecutive frames."""

from __future__ import annotations

import pytest

from rope_inspect.config import DecisionConfig, LineConfig
from rope_inspect.decision.defects import Blob
from rope_inspect.decision.position import RopeGeometry, RopePosition
from rope_inspect.decision.tracker import Defect, DefectTracker, TrackUpdate

W, H = 900, 224
MM_PER_PX = 0.1  # the frame shows 90 mm of rope
SPEED = 0.1  # m/s
FPS = 10.0  # 10 mm of rope per frame


def _line(**kw: object) -> LineConfig:
    return LineConfig.model_validate({"speed_m_per_s": SPEED, **kw})


def _geometry(travel: str = "negative") -> RopeGeometry:
    return RopeGeometry.from_config(_line(image_travel=travel), MM_PER_PX, (H, W, 3))


def _blob(geometry: RopeGeometry, frame_m: float, at_m: float, score: float) -> Blob:
    """A 4 mm long blob whose centre lies at rope coordinate `at_m`."""
    x = W / 2 + geometry.sign * (at_m - frame_m) / geometry.m_per_px
    x0 = round(x - 20)
    return Blob((x0, 100, x0 + 40, 110), 400, 4.0, score, (x0 + 20.0, 105.0))


def _in_view(geometry: RopeGeometry, index: int, at_m: float) -> bool:
    low, high = geometry.view(index * SPEED / FPS)
    return low + 0.003 < at_m < high - 0.003


def _run(
    tracker: DefectTracker,
    geometry: RopeGeometry,
    defects: dict[float, list[float]],
    frames: int,
) -> tuple[list[TrackUpdate], list[Defect]]:
    """Frames every 10 mm; `defects` maps a rope coordinate to scores per sighting."""
    updates: list[TrackUpdate] = []
    emitted: list[Defect] = []
    for index in range(frames):
        frame_m = index * SPEED / FPS
        blobs = []
        for at_m, scores in defects.items():
            seen = [i for i in range(frames) if _in_view(geometry, i, at_m)]
            if index in seen[: len(scores)]:
                score = scores[seen.index(index)]
                blobs.append(_blob(geometry, frame_m, at_m, score))
        update = tracker.update(index, int(index * 1e8), frame_m, blobs)
        updates.append(update)
        emitted.extend(update.emitted)
    return updates, emitted


def _tracker(geometry: RopeGeometry, merge_m: float = 0.02) -> DefectTracker:
    cfg = DecisionConfig.model_validate({"merge_distance_m": merge_m})
    return DefectTracker(cfg, geometry)


def test_position_from_line_speed() -> None:
    position = RopePosition(_line(speed_m_per_s=0.5))
    t0 = 5_000_000_000
    assert position.at(t0) == 0.0
    assert position.at(t0 + 100_000_000) == pytest.approx(0.05)
    assert position.at(t0 + 250_000_000) == pytest.approx(0.125)


def test_position_from_encoder_counts_with_wraparound() -> None:
    position = RopePosition(_line(encoder="camera_chunk", encoder_counts_per_m=1000))
    assert position.at(0, 2**32 - 300) == 0.0
    assert position.at(100_000_000, 2**32 - 100) == pytest.approx(0.2)
    assert position.at(200_000_000, 100) == pytest.approx(0.4), "counter wrapped"
    assert position.at(300_000_000, 2100) == pytest.approx(2.4)


def test_missing_encoder_count_is_placed_by_measured_speed() -> None:
    position = RopePosition(
        _line(encoder="modbus", encoder_counts_per_m=1000, speed_m_per_s=1.0)
    )
    for step in range(30):  # the rope runs at 2 m/s, not the configured 1 m/s
        position.at(step * 100_000_000, step * 200)
    assert position.speed_m_per_s == pytest.approx(2.0, rel=0.01)
    assert position.at(3_050_000_000, None) == pytest.approx(5.8 + 0.15 * 2.0, rel=0.01)
    assert position.missing_counts == 1


@pytest.mark.parametrize("travel", ["negative", "positive"])
def test_geometry_places_pixels_on_the_rope(travel: str) -> None:
    geometry = _geometry(travel)
    assert geometry.coordinate(1.0, W / 2) == pytest.approx(1.0)
    right = geometry.coordinate(1.0, W / 2 + 100)
    assert right == pytest.approx(1.01 if travel == "negative" else 0.99)
    assert geometry.view(1.0) == pytest.approx((0.955, 1.045))


@pytest.mark.parametrize("travel", ["negative", "positive"])
def test_one_defect_in_three_frames_is_one_defect(travel: str) -> None:
    geometry = _geometry(travel)
    tracker = _tracker(geometry)
    updates, emitted = _run(tracker, geometry, {0.03: [0.6, 0.9, 0.7]}, frames=14)

    assert len(emitted) == 1
    defect = emitted[0]
    assert defect.frames_seen == 3 and (defect.first_frame, defect.last_frame) == (0, 2)
    assert defect.position_m == pytest.approx(0.03, abs=1e-3)
    assert defect.length_mm == pytest.approx(4.0, abs=0.2)
    assert defect.score == pytest.approx(0.9) and defect.best_frame == 1
    assert defect.best_area_px == 400 and defect.best_area_mm2 == pytest.approx(4.0)
    best = [(i, v.defect.id) for i, u in enumerate(updates) for v in u.best_views]
    assert best == [(0, 1), (1, 1)], "frames 0 and 1 were its best views, not 2"
    assert [len(u.opened) for u in updates[:3]] == [1, 0, 0]


def test_emitted_once_after_leaving_the_view() -> None:
    geometry = _geometry()
    tracker = _tracker(geometry)
    updates, emitted = _run(tracker, geometry, {0.03: [0.6, 0.9, 0.7]}, frames=14)
    when = [i for i, u in enumerate(updates) if u.emitted]
    # the defect ends at 0.032 m; it is out of reach once 0.032 + 0.02 < view low
    assert when == [10] and len(emitted) == 1 and tracker.open == []
    assert tracker.flush() == ()


def test_two_defects_far_apart_are_two() -> None:
    geometry = _geometry()
    tracker = _tracker(geometry)
    _, emitted = _run(tracker, geometry, {0.03: [0.8] * 3, 0.25: [0.7] * 3}, frames=40)
    assert sorted(round(d.position_m, 2) for d in emitted) == [0.03, 0.25]
    assert len({d.id for d in emitted}) == 2


def test_blobs_of_one_frame_within_the_merge_distance_are_one_defect() -> None:
    geometry = _geometry()
    tracker = _tracker(geometry, merge_m=0.005)
    near = [_blob(geometry, 0.0, 0.000, 0.7), _blob(geometry, 0.0, 0.006, 0.8)]
    far = [_blob(geometry, 0.0, -0.03, 0.9)]
    update = tracker.update(0, 0, 0.0, near + far)
    assert len(update.opened) == 2
    joined = max(update.opened, key=lambda d: d.best_area_px)
    assert joined.best_area_px == 800 and joined.score == pytest.approx(0.8)
    assert joined.best_bbox[2] - joined.best_bbox[0] == 100  # union of both boxes
    assert len(tracker.flush()) == 2


def test_a_missed_frame_in_between_still_merges() -> None:
    geometry = _geometry()
    tracker = _tracker(geometry)
    tracker.update(0, 0, 0.00, [_blob(geometry, 0.00, 0.02, 0.8)])
    tracker.update(1, 1, 0.01, [])
    update = tracker.update(2, 2, 0.02, [_blob(geometry, 0.02, 0.02, 0.7)])
    assert update.opened == () and len(tracker.open) == 1
    assert tracker.open[0].frames_seen == 2
