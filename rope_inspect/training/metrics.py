"""Detection metrics of `rope-inspect eval`: image AUROC, pixel AUROC, pixel AP, AUPRO.

ROC and AP come from scikit-learn. AUPRO (Bergmann et al., MVTec AD) is the area under
the per-region-overlap curve up to a false-positive-rate limit (0.3), divided by the
limit so that a perfect detector scores 1.0. Every connected defect region weighs the
same, however large, so small defects count as much as big ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class ProCurve:
    """False-positive rates and mean per-region overlaps at falling thresholds."""

    fpr: np.ndarray
    pro: np.ndarray


def _region_labels(masks: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """One label array for all images: 0 = normal, k >= 1 = k-th defect region."""
    labels = []
    offset = 0
    for mask in masks:
        count, label = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        label = label.astype(np.int64)
        label[label > 0] += offset
        offset += count - 1
        labels.append(label.ravel())
    return np.concatenate(labels), offset


def pro_curve(maps: list[np.ndarray], masks: list[np.ndarray]) -> ProCurve:
    """The PRO curve over all thresholds of the anomaly maps.

    At threshold t, FPR is the share of normal pixels with score >= t and PRO the mean
    over defect regions of the share of the region's pixels with score >= t. Computed
    exactly from one sort of all pixels; tied scores move together.
    """
    scores = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
    labels, regions = _region_labels(masks)
    negatives = labels == 0
    if regions == 0 or not negatives.any():
        raise ValueError("AUPRO needs at least one defect region and one normal pixel")

    sizes = np.bincount(labels, minlength=regions + 1).astype(np.float64)
    weights = np.where(negatives, 0.0, 1.0 / (sizes[labels] * regions))
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    pro = np.cumsum(weights[order])
    fpr = np.cumsum(negatives[order]) / negatives.sum()

    # keep the last position of each run of equal scores (a threshold includes all ties)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    fpr = np.r_[0.0, fpr[last_of_tie]]
    pro = np.r_[0.0, pro[last_of_tie]]
    return ProCurve(fpr=fpr, pro=np.minimum(pro, 1.0))


def aupro(
    maps: list[np.ndarray], masks: list[np.ndarray], fpr_limit: float = 0.3
) -> float:
    """Normalised area under the PRO curve for FPR in [0, fpr_limit]."""
    curve = pro_curve(maps, masks)
    fpr, pro = curve.fpr, curve.pro
    inside = fpr <= fpr_limit
    x = fpr[inside]
    y = pro[inside]
    if x[-1] < fpr_limit:
        end = np.interp(fpr_limit, fpr, pro)
        x = np.r_[x, fpr_limit]
        y = np.r_[y, end]
    area = np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)
    return float(area / fpr_limit)


def _safe(metric: str, labels: np.ndarray, scores: np.ndarray) -> float | None:
    if labels.min() == labels.max():
        return None
    if metric == "auroc":
        return float(roc_auc_score(labels, scores))
    return float(average_precision_score(labels, scores))


def detection_metrics(
    image_scores: np.ndarray,
    image_labels: np.ndarray,
    maps: list[np.ndarray],
    masks: list[np.ndarray],
    fpr_limit: float = 0.3,
) -> dict[str, float | None]:
    """Image AUROC, pixel AUROC, pixel AP and AUPRO; None where undefined."""
    pixel_scores = np.concatenate([m.ravel() for m in maps])
    pixel_labels = np.concatenate([m.ravel() for m in masks]).astype(np.uint8)
    has_defect = bool(pixel_labels.any()) and not bool(pixel_labels.all())
    return {
        "image_auroc": _safe("auroc", image_labels.astype(np.uint8), image_scores),
        "pixel_auroc": _safe("auroc", pixel_labels, pixel_scores),
        "pixel_ap": _safe("ap", pixel_labels, pixel_scores),
        "aupro": aupro(maps, masks, fpr_limit) if has_defect else None,
    }
