"""Thresholds for a target false-alarm rate, from the scores of defect-free frames.

A line engineer states a rate per length of rope ("1 false reject per km"). The frame
score is the maximum of the smoothed anomaly map inside the rope envelope, and a frame
whose score reaches the threshold can raise a reject. So:

    frames per km      = max(1000 m / field of view along the rope,
                             frame rate x 1000 m / rope speed)  (if the rate is known)
    allowed p (frame)  = false rejects per km / frames per km

1000 / field of view counts frames that just tile the rope; a camera running faster
sees each metre several times and every frame may alarm, so the larger count is used.

The threshold is then chosen so that the 95 % upper confidence bound (Clopper-Pearson)
of the per-frame false-alarm probability, given how many good frames reached it, stays
below p. With zero good frames above the threshold that needs n >= ln(0.05)/ln(1-p)
frames (about 3/p). With fewer, the caller refuses, or, when asked, extrapolates: an
exponential tail fitted to the highest scores (peaks over a threshold) gives the score
exceeded with probability p. The map lies in [0, 1], so a threshold of 1 or more means
the target cannot be met with this model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rope_inspect.errors import DataError

CONFIDENCE = 0.95
MIN_TAIL_IMAGES = 20
EPSILON = 1e-6  # above the highest good score when no good frame may reach it


@dataclass(frozen=True)
class FalseAlarmTarget:
    false_rejects_per_km: float
    frames_per_km: float
    frame_probability: float
    derivation: str


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    method: str  # "empirical" or "tail-fit"
    good_over: int  # good frames whose score reaches the threshold
    frame_probability: float  # bound (empirical) or model estimate (tail fit)
    description: str


def false_alarm_target(
    false_rejects_per_km: float, fov_m: float, fps: float | None, speed_m_per_s: float
) -> FalseAlarmTarget:
    """Allowed per-frame false-alarm probability for a rate per km (module doc)."""
    if false_rejects_per_km <= 0:
        raise DataError(
            f"--false-rejects-per-km {false_rejects_per_km} must be above 0",
            "a zero rate cannot be demonstrated; use e.g. 0.1",
        )
    tiling = 1000.0 / fov_m
    derivation = f"1000 m / {fov_m * 1000:.1f} mm field of view = {tiling:.0f}"
    frames = tiling
    if fps is not None:
        timed = fps * 1000.0 / speed_m_per_s
        if timed > tiling:
            frames = timed
            derivation = (
                f"{fps:g} fps x 1000 m / {speed_m_per_s:g} m/s = {timed:.0f} (frames "
                f"overlap; 1000 m / field of view would be {tiling:.0f})"
            )
    probability = min(false_rejects_per_km / frames, 1.0)
    return FalseAlarmTarget(false_rejects_per_km, frames, probability, derivation)


def images_needed(probability: float, confidence: float = CONFIDENCE) -> int:
    """Good frames needed to show p <= `probability` when none of them alarms."""
    if probability >= 1.0:
        return 1
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-probability))


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]  # fmt: skip
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """Clopper-Pearson upper confidence bound of p after k alarms in n frames."""
    if k >= n:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):  # bisection: P(X <= k | p) falls as p grows
        mid = (lo + hi) / 2
        if _binomial_cdf(k, n, mid) > 1.0 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def empirical_threshold(scores: np.ndarray, probability: float) -> ThresholdChoice:
    """The lowest threshold whose confidence bound on false alarms stays <= p."""
    ordered = np.sort(np.asarray(scores, np.float64))[::-1]
    n = len(ordered)
    k = 0
    while k + 1 < n and upper_bound(k + 1, n) <= probability:
        k += 1
    while k > 0 and ordered[k - 1] <= ordered[k]:  # ties: keep exactly k above
        k -= 1
    if k == 0:
        threshold = min(float(ordered[0]) + EPSILON, 1.0)
    else:
        threshold = float(ordered[k - 1] + ordered[k]) / 2
    bound = upper_bound(k, n)
    return ThresholdChoice(
        threshold,
        "empirical",
        k,
        bound,
        f"{k} of {n} good frames reach it; 95 % upper bound on the per-frame "
        f"false-alarm probability {bound:.3g} <= {probability:.3g}",
    )


def tail_fit_threshold(scores: np.ndarray, probability: float) -> ThresholdChoice:
    """Extrapolate with an exponential tail over the highest fifth of the scores."""
    ordered = np.sort(np.asarray(scores, np.float64))[::-1]
    n = len(ordered)
    if n < MIN_TAIL_IMAGES:
        raise DataError(
            f"{n} good images are too few even to fit a tail model (>= "
            f"{MIN_TAIL_IMAGES})",
            "add defect-free images of this line",
        )
    m = max(5, math.ceil(0.2 * n))
    base = float(ordered[m])
    scale = float(np.mean(ordered[:m] - base))
    if scale <= 0:
        raise DataError(
            "the highest good scores are all equal: no tail to fit",
            "check the engine (it may output a constant) or add varied images",
        )
    threshold = base + scale * math.log(m / (n * probability))
    if threshold >= 1.0:
        raise DataError(
            f"the fitted tail puts the threshold at {threshold:.3f}, above the map's "
            f"maximum 1: this model cannot reach {probability:.3g} false alarms per "
            "frame",
            "raise --false-rejects-per-km, or retrain the model on more good rope",
        )
    threshold = max(threshold, min(float(ordered[0]) + EPSILON, 1.0))
    good_over = int(np.count_nonzero(ordered >= threshold))
    return ThresholdChoice(
        threshold,
        "tail-fit",
        good_over,
        probability,
        f"EXTRAPOLATED: exponential tail (scale {scale:.4g}) fitted to the top {m} "
        f"of {n} good scores above {base:.4g}; estimated per-frame false-alarm "
        f"probability {probability:.3g} (not demonstrated by data)",
    )


def choose_threshold(
    scores: np.ndarray, probability: float, allow_extrapolation: bool
) -> ThresholdChoice:
    """Empirical when the images suffice; a tail fit when allowed; else refuse."""
    n = len(scores)
    needed = images_needed(probability)
    if n >= needed:
        return empirical_threshold(scores, probability)
    if allow_extrapolation:
        return tail_fit_threshold(scores, probability)
    raise DataError(
        f"{n} good images cannot show a false-alarm probability of {probability:.3g} "
        f"per frame: that needs at least {needed} defect-free images",
        f"add good images (>= {needed}), raise --false-rejects-per-km, or pass "
        "--allow-extrapolation to fit a tail model (recorded as such in the file)",
    )
