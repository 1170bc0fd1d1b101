"""The filter bar of the review page: query-string values to a store query and back.

Values come from an HTML form, so blanks mean "no limit" and a bad value is reported
on the page instead of failing the request. Times are UTC ("2024-05-01T08:00").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from rope_inspect.storage import DefectQuery

SORTS = {
    "newest": ("time", True),
    "oldest": ("time", False),
    "score": ("score", True),
    "position": ("position", False),
}
VERDICT_CHOICES = ("any", "none", "defect", "false_alarm")
DEFAULTS = {"verdict": "any", "sort": "newest", "page": 1}


@dataclass
class FilterForm:
    """What the filter bar shows (strings as typed) and the page number."""

    since: str = ""
    until: str = ""
    score_min: str = ""
    score_max: str = ""
    verdict: str = "any"
    line: str = ""
    sort: str = "newest"
    page: int = 1

    def href(self, **changes: Any) -> str:
        """`?...` link to this listing with some values changed (defaults left out)."""
        values = asdict(replace(self, **changes))
        kept = {k: v for k, v in values.items() if v not in ("", None, DEFAULTS.get(k))}
        return "?" + urlencode(kept) if kept else "?"

    @property
    def active(self) -> bool:
        return self.href(page=1) != "?"


def _time(text: str, name: str, errors: list[str]) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{name}: '{text}' is not a date and time like 2024-05-01T08:00")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _number(text: str, name: str, errors: list[str]) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        errors.append(f"{name}: '{text}' is not a number")
        return None


def _page(text: str) -> int:
    try:
        return max(1, int(text))
    except ValueError:
        return 1


def parse_filters(
    params: Mapping[str, str], page_size: int
) -> tuple[FilterForm, DefectQuery, list[str]]:
    """(form as typed, the store query, messages about values that were ignored)."""
    form = FilterForm(
        since=params.get("since", "").strip(),
        until=params.get("until", "").strip(),
        score_min=params.get("score_min", "").strip(),
        score_max=params.get("score_max", "").strip(),
        verdict=params.get("verdict", "any"),
        line=params.get("line", "").strip(),
        sort=params.get("sort", "newest"),
        page=_page(params.get("page", "1")),
    )
    errors: list[str] = []
    if form.verdict not in VERDICT_CHOICES:
        errors.append(f"verdict: '{form.verdict}' is not one of {VERDICT_CHOICES}")
        form.verdict = "any"
    if form.sort not in SORTS:
        errors.append(f"sort: '{form.sort}' is not one of {tuple(SORTS)}")
        form.sort = "newest"
    sort, descending = SORTS[form.sort]
    query = DefectQuery(
        since=_time(form.since, "from", errors),
        until=_time(form.until, "to", errors),
        score_min=_number(form.score_min, "score from", errors),
        score_max=_number(form.score_max, "score to", errors),
        verdict=form.verdict,  # type: ignore[arg-type]
        line=form.line or None,
        sort=sort,  # type: ignore[arg-type]
        descending=descending,
        offset=(form.page - 1) * page_size,
        limit=page_size,
    )
    return form, query, errors
