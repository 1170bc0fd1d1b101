"""Pictures of an evaluation: ROC and PR curves, and a heat-map overlay per test image.

They go into the run's eval folder only: they derive from the (licensed) test photos,
so they never belong in the repository.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve


def _curve_axes(title: str, xlabel: str, ylabel: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, out: Path
) -> None:
    """ROC curves, one line per name: (labels, scores)."""
    fig, ax = _curve_axes(title, "false positive rate", "true positive rate")
    for name, (labels, scores) in curves.items():
        if labels.min() == labels.max():
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_pr(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, out: Path
) -> None:
    """Precision-recall curves, one line per name: (labels, scores)."""
    fig, ax = _curve_axes(title, "recall", "precision")
    for name, (labels, scores) in curves.items():
        if labels.min() == labels.max():
            continue
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision, label=name)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def overlay_image(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    envelope: np.ndarray,
    truth: np.ndarray | None,
    score: float,
) -> np.ndarray:
    """The image above the map as a heat map, envelope edge grey, truth outline green.

    The map is shown on a fixed [0, 1] scale, so overlays of one run compare directly.
    """
    heat = cv2.applyColorMap(
        np.clip(anomaly_map * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET
    )
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    blended = cv2.addWeighted(image, 0.55, heat, 0.45, 0.0)
    edge, _ = cv2.findContours(
        envelope.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(blended, edge, -1, (200, 200, 200), 1)
    if truth is not None and truth.any():
        outline, _ = cv2.findContours(
            truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(blended, outline, -1, (0, 255, 0), 2)
    cv2.putText(
        blended,
        f"score {score:.3f}",
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return np.vstack([image, blended])


def write_overlay(path: Path, picture: np.ndarray) -> None:
    """Save an RGB picture as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
