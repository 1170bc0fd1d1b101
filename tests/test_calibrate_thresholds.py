"""The statistics behind calibrate: frames per km, confidence bounds, thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rope_inspect.engine import thresholds as th
from rope_inspect.errors import DataError


def test_frames_per_km_from_field_of_view_or_frame_rate() -> None:
    # 0.135 m of rope per frame, camera slow: frames just tile the rope
    target = th.false_alarm_target(1.0, 0.135, fps=10.0, speed_m_per_s=5.0)
    assert target.frames_per_km == pytest.approx(1000 / 0.135)
    assert target.frame_probability == pytest.approx(0.135 / 1000)
    assert "field of view" in target.derivation
    # fast camera: each metre seen 8 times, every frame may alarm
    fast = th.false_alarm_target(1.0, 0.135, fps=60.0, speed_m_per_s=1.0)
    assert fast.frames_per_km == pytest.approx(60_000)
    assert "frames overlap" in fast.derivation
    unknown = th.false_alarm_target(2.0, 0.1, fps=None, speed_m_per_s=1.0)
    assert unknown.frame_probability == pytest.approx(2.0 / 10_000)
    with pytest.raises(DataError):
        th.false_alarm_target(0.0, 0.1, None, 1.0)


def test_images_needed_and_zero_failure_bound_agree() -> None:
    needed = th.images_needed(1e-3)
    assert needed == 2995  # the "rule of three": about 3 / p
    assert th.upper_bound(0, needed) <= 1e-3 < th.upper_bound(0, needed - 1)
    assert th.upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-6)


def test_upper_bound_matches_a_known_clopper_pearson_value() -> None:
    # 95 % one-sided Clopper-Pearson upper bound for 2 alarms in 100 frames
    assert th.upper_bound(2, 100) == pytest.approx(0.0615, abs=5e-4)
    assert th.upper_bound(100, 100) == 1.0


def test_empirical_threshold_allows_alarms_only_within_the_bound() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.0, 0.5, 5000)
    choice = th.empirical_threshold(scores, probability=2e-3)
    assert choice.method == "empirical"
    assert 0 < choice.good_over == int(np.sum(scores >= choice.threshold))
    assert th.upper_bound(choice.good_over, 5000) <= 2e-3
    assert th.upper_bound(choice.good_over + 1, 5000) > 2e-3


def test_empirical_threshold_above_the_maximum_and_with_ties() -> None:
    few = th.empirical_threshold(np.array([0.1, 0.3, 0.2]), probability=0.7)
    assert few.good_over == 0 and few.threshold == pytest.approx(0.3 + th.EPSILON)
    tied = np.array([0.2] * 50 + [0.7] * 3)
    choice = th.empirical_threshold(tied, probability=0.3)
    assert choice.good_over == int(np.sum(tied >= choice.threshold))
    assert choice.threshold in (pytest.approx(0.45), pytest.approx(0.7 + th.EPSILON))


def test_choose_refuses_with_the_needed_count_or_extrapolates() -> None:
    scores = np.random.default_rng(1).gamma(2.0, 0.03, 40)
    with pytest.raises(DataError, match=r"needs at least 2995"):
        th.choose_threshold(scores, 1e-3, allow_extrapolation=False)
    fit = th.choose_threshold(scores, 1e-3, allow_extrapolation=True)
    assert fit.method == "tail-fit" and "EXTRAPOLATED" in fit.description
    assert scores.max() < fit.threshold < 1.0
    # an exponential tail: a 10x rarer target moves the threshold by scale * ln 10
    rarer = th.tail_fit_threshold(scores, 1e-4).threshold
    m = math.ceil(0.2 * 40)
    top = np.sort(scores)[::-1]
    scale = float(np.mean(top[:m] - top[m]))
    assert rarer - fit.threshold == pytest.approx(scale * math.log(10), rel=1e-6)


def test_tail_fit_refuses_flat_scores_and_unreachable_targets() -> None:
    with pytest.raises(DataError, match="all equal"):
        th.tail_fit_threshold(np.full(30, 0.2), 1e-4)
    wide = np.linspace(0.0, 0.95, 30)
    with pytest.raises(DataError, match="above the map's maximum"):
        th.tail_fit_threshold(wide, 1e-9)
