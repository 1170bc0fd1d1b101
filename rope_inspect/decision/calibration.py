"""Per-line calibration: thresholds and image scale, read by the daemon.

Written by `rope-inspect calibrate` to `calibration/<line>.yaml`. Changing a threshold
here never needs an engine rebuild.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from rope_inspect.configfile import StrictModel, load_config


class Calibration(StrictModel):
    """What was measured for one line, from what data, when."""

    line: str = Field(description="line id this calibration belongs to")
    pixel_threshold: float = Field(
        ge=0, le=1, description="anomaly map value of a defect pixel"
    )
    image_threshold: float = Field(
        ge=0, le=1, description="frame score of a defective frame"
    )
    mm_per_px: float = Field(gt=0, description="image scale at the rope")
    engine_sha256: str = Field(
        default="", description="engine the thresholds were measured with"
    )
    measured_at: str = Field(default="", description="ISO time of the calibration")
    source: str = Field(
        default="", description="images used, and how the thresholds were chosen"
    )
    good_images: int = Field(default=0, ge=0)
    target_false_rejects_per_km: float | None = None
    margin_to_nearest_defect: float | None = Field(
        default=None,
        description="weakest defect image's score minus the image threshold",
    )
    threshold_method: str = Field(
        default="",
        description="empirical (shown by the good images) or tail-fit (extrapolated)",
    )
    frames_per_km: float | None = Field(
        default=None, gt=0, description="frames per km of rope"
    )
    false_alarm_per_frame: float | None = Field(
        default=None, ge=0, le=1, description="allowed false alarms per frame"
    )
    defect_images: int = Field(default=0, ge=0)
    defect_recall: float | None = Field(
        default=None, ge=0, le=1, description="defect images at the image threshold"
    )
    rope_width_px: float | None = Field(
        default=None, gt=0, description="median rope width across its axis (mask)"
    )
    notes: str = ""


def load_calibration(path: str | Path) -> Calibration:
    return load_config(path, Calibration)
