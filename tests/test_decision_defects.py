"""Connected defects of an anomaly map: threshold, minimum area, size in mm^2, score."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rope_inspect.config import DecisionConfig
from rope_inspect.decision.calibration import Calibration
from rope_inspect.decision.defects import DefectFinder, find_defects

H, W = 120, 300


def _calibration(pixel: float = 0.5, image: float = 0.6) -> Calibration:
    return Calibration.model_validate(
        {
            "line": "t",
            "pixel_threshold": pixel,
            "image_threshold": image,
            "mm_per_px": 0.1,
        }
    )


def _decision(sigma: float = 0.0, min_area: int = 30) -> DecisionConfig:
    return DecisionConfig.model_validate(
        {"smoothing_sigma_px": sigma, "min_area_px": min_area}
    )


def _envelope() -> np.ndarray:
    envelope = np.zeros((H, W), bool)
    envelope[20:100] = True
    return envelope


def test_blob_bbox_area_mm2_and_score() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[40:50, 100:120] = 0.7
    amap[44, 110] = 0.9
    found = find_defects(amap, _envelope(), _calibration(), _decision())
    assert len(found.blobs) == 1
    blob = found.blobs[0]
    assert blob.bbox == (100, 40, 120, 50)
    assert blob.area_px == 200
    assert blob.area_mm2 == pytest.approx(2.0)  # 200 px * (0.1 mm)^2
    assert blob.score == pytest.approx(0.9)
    assert blob.centroid == pytest.approx((109.5, 44.5))
    assert found.score == pytest.approx(0.9) and found.over_image_threshold


def test_below_the_pixel_threshold_there_is_no_defect() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[40:50, 100:120] = 0.45
    found = find_defects(amap, _envelope(), _calibration(), _decision())
    assert found.blobs == () and found.score == pytest.approx(0.45)
    assert not found.over_image_threshold


def test_small_regions_are_dropped() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[30:33, 30:33] = 0.95  # 9 px
    amap[60:70, 200:206] = 0.8  # 60 px
    found = find_defects(amap, _envelope(), _calibration(), _decision(min_area=30))
    assert [b.area_px for b in found.blobs] == [60]
    assert found.score == pytest.approx(0.95), "the frame score still sees it"


def test_only_the_envelope_counts() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[2:15, 50:90] = 1.0  # off the rope
    amap[95:110, 150:170] = 0.8  # straddles the envelope edge at row 100
    found = find_defects(amap, _envelope(), _calibration(), _decision())
    assert len(found.blobs) == 1
    assert found.blobs[0].bbox == (150, 95, 170, 100)
    assert found.score == pytest.approx(0.8)


def test_smoothing_removes_a_single_hot_pixel() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[50, 50] = 1.0
    raw = find_defects(amap, _envelope(), _calibration(), _decision(0, min_area=1))
    smooth = find_defects(amap, _envelope(), _calibration(), _decision(2, min_area=1))
    assert len(raw.blobs) == 1
    assert smooth.blobs == () and smooth.score < 0.1


def test_blobs_are_ordered_by_score_and_separate() -> None:
    amap = np.zeros((H, W), np.float32)
    amap[30:40, 10:20] = 0.6
    amap[30:40, 60:70] = 0.9
    amap[70:80, 250:260] = 0.7
    found = find_defects(amap, _envelope(), _calibration(), _decision(min_area=10))
    assert [round(b.score, 2) for b in found.blobs] == [0.9, 0.7, 0.6]


def test_finder_reuses_buffers_and_follows_a_new_envelope() -> None:
    finder = DefectFinder(_calibration(), _decision(sigma=1.0))
    amap = np.zeros((H, W), np.float32)
    amap[40:50, 100:120] = 0.9
    first = finder.find(amap, _envelope())
    assert len(first.blobs) == 1
    moved = np.zeros((H, W), bool)
    moved[60:] = True
    second = finder.find(amap, moved)
    assert second.blobs == () and second.score == pytest.approx(0.0)
    with pytest.raises(ValueError):
        finder.find(amap[:10], moved)


def test_smoothing_the_envelope_box_equals_smoothing_the_frame() -> None:
    rng = np.random.default_rng(3)
    envelope = np.zeros((H, W), bool)
    envelope[40:80, 30:250] = True
    amap = (rng.random((H, W)) * envelope).astype(np.float32)
    amap[60, 100] = 1.0
    finder = DefectFinder(_calibration(pixel=0.99, image=0.99), _decision(sigma=2.0))
    found = finder.find(amap, envelope)
    full = cv2.GaussianBlur(amap, (13, 13), 2.0, borderType=cv2.BORDER_REPLICATE)
    assert found.score == pytest.approx(float(full[envelope].max()), rel=1e-5)
