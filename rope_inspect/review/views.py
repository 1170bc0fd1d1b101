"""What the review pages show: records as cards, charts, threshold, reviewer name.

The score histogram marks the pixel threshold from `--calibration`, else the store's
"calibration" meta entry (written by the daemon), else the threshold recorded with
the newest defect; without any of them no line is drawn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from markupsafe import Markup
from pydantic import BaseModel, Field
from starlette.requests import Request

from rope_inspect.decision.calibration import load_calibration
from rope_inspect.review import plots
from rope_inspect.storage import DefectQuery, DefectRecord, StoreView
from rope_inspect.storage.record import ID_PATTERN

REVIEWER_COOKIE = "ri_reviewer"
_REVIEWER_OK = re.compile(r"^[\w .@-]{1,40}$")
REJECT_LABELS = {
    "scheduled": "reject scheduled",
    "fired": "rejected",
    "late": "reject late",
    "not_fired": "not rejected",
    "none": "no reject",
}


class VerdictIn(BaseModel):
    """Body of POST /api/verdict; `verdict` None clears it (undo)."""

    id: str = Field(pattern=ID_PATTERN.pattern)
    verdict: str | None = None
    reviewer: str | None = Field(None, max_length=200)


def reviewer_of(request: Request, given: str | None) -> str:
    """Who gives the verdict: the field sent, else the reviewer cookie."""
    for name in (given, request.cookies.get(REVIEWER_COOKIE)):
        if name and _REVIEWER_OK.match(name.strip()):
            return name.strip()
    return "reviewer"


def calibration_threshold(calibration: Path | None) -> float | None:
    """The pixel threshold of a calibration file (ConfigError when it is unusable)."""
    return (
        None if calibration is None else load_calibration(calibration).pixel_threshold
    )


def threshold_of(view: StoreView, fixed: float | None) -> float | None:
    """`fixed` (from --calibration), else the store's calibration meta, else the
    threshold recorded with the newest defect, else None."""
    if fixed is not None:
        return fixed
    meta = view.get_meta("calibration")
    if isinstance(meta, dict) and isinstance(meta.get("pixel_threshold"), int | float):
        return float(meta["pixel_threshold"])
    newest = view.list_defects(DefectQuery(limit=1)).items
    return newest[0].threshold if newest else None


def card(record: DefectRecord) -> dict[str, Any]:
    """A record as the templates and the JSON API show it."""
    data = record.to_dict()
    data["crop_url"] = f"/files/{record.crop}"
    data["overlay_url"] = f"/files/{record.overlay}"
    data["frame_url"] = f"/files/{record.frame}" if record.frame else None
    data["when"] = record.time[:19].replace("T", " ")
    data["reject_label"] = REJECT_LABELS.get(record.reject_state, record.reject_state)
    return data


def charts(view: StoreView, query: DefectQuery, threshold: float | None) -> dict:
    """The three charts of the page as inline SVG, over the filtered defects."""
    return {
        "per_metre": Markup(
            plots.bar_chart(
                view.per_metre(query),
                "Defects along the rope",
                "position",
                plots.metres,
            )
        ),
        "per_hour": Markup(
            plots.bar_chart(
                view.per_hour(query),
                "Defects per hour",
                "time (UTC)",
                plots.hour,
                n_ticks=4,
            )
        ),
        "scores": Markup(
            plots.bar_chart(
                view.score_histogram(query),
                "Score histogram",
                "score",
                plots.score,
                marker=threshold,
            )
        ),
    }
