"""Evaluation metrics on inputs small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rope_inspect.training.metrics import aupro, detection_metrics, pro_curve


def test_pro_curve_by_hand() -> None:
    # one 1 x 6 image: two defect regions (pixels 0-1 and 4), three normal pixels
    scores = np.array([[0.9, 0.5, 0.8, 0.3, 0.7, 0.1]])
    truth = np.array([[1, 1, 0, 0, 1, 0]], bool)
    curve = pro_curve([scores], [truth])
    # thresholds 0.9, 0.8, 0.7, 0.5, 0.3, 0.1 in turn:
    # PRO = mean over regions of the covered share; FPR = covered normals / 3
    expected_pro = [0, 0.25, 0.25, 0.75, 1.0, 1.0, 1.0]
    expected_fpr = [0, 0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1.0]
    assert np.allclose(curve.pro, expected_pro)
    assert np.allclose(curve.fpr, expected_fpr)


def test_aupro_by_hand() -> None:
    scores = np.array([[0.9, 0.5, 0.8, 0.3, 0.7, 0.1]])
    truth = np.array([[1, 1, 0, 0, 1, 0]], bool)
    # up to FPR 1/3: one segment (0, 0.25) -> (1/3, 0.25) after the vertical steps
    # at FPR 0; area = 0.25 * 1/3; normalised by 1/3 -> 0.25
    assert aupro([scores], [truth], fpr_limit=1 / 3) == pytest.approx(0.25)
    # up to FPR 1.0: the points (0,0)(0,.25)(1/3,.25)(1/3,1)(2/3,1)(1,1)
    # area = 1/3 * 0.25 + 2/3 * 1 = 0.75
    assert aupro([scores], [truth], fpr_limit=1.0) == pytest.approx(0.75)


def test_aupro_perfect_and_interpolated_limit() -> None:
    truth = np.zeros((4, 4), bool)
    truth[1:3, 1:3] = True
    perfect = truth.astype(float)
    assert aupro([perfect], [truth], 0.3) == pytest.approx(1.0)
    # every pixel equal: the curve jumps from (0, 0) to (1, 1); at 0.3 PRO is 0.3
    flat = np.full((4, 4), 0.5)
    assert aupro([flat], [truth], 0.3) == pytest.approx(0.15)


def test_aupro_weighs_regions_equally() -> None:
    truth = np.zeros((1, 20), bool)
    truth[0, 0:10] = True  # a large region
    truth[0, 15] = True  # a one-pixel region
    scores = np.zeros((1, 20))
    scores[0, 15] = 1.0  # only the small one is found
    assert pro_curve([scores], [truth]).pro[1] == pytest.approx(0.5)


def test_detection_metrics_on_known_inputs() -> None:
    truth_a = np.array([[1, 0], [0, 0]], bool)
    truth_b = np.zeros((2, 2), bool)
    maps = [np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[0.4, 0.1], [0.1, 0.1]])]
    result = detection_metrics(
        np.array([0.9, 0.4]), np.array([1, 0]), maps, [truth_a, truth_b]
    )
    assert result["image_auroc"] == pytest.approx(1.0)
    assert result["pixel_auroc"] == pytest.approx(1.0)
    assert result["pixel_ap"] == pytest.approx(1.0)
    assert result["aupro"] == pytest.approx(1.0)

    swapped = detection_metrics(
        np.array([0.1, 0.4]), np.array([1, 0]), maps, [truth_a, truth_b]
    )
    assert swapped["image_auroc"] == pytest.approx(0.0)


def test_metrics_undefined_without_defects() -> None:
    maps = [np.random.default_rng(0).random((3, 3))]
    result = detection_metrics(
        np.array([0.5]), np.array([0]), maps, [np.zeros((3, 3), bool)]
    )
    assert result == {
        "image_auroc": None,
        "pixel_auroc": None,
        "pixel_ap": None,
        "aupro": None,
    }
