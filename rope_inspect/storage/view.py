"""Reading a defect store: listings, counts, verdicts and histograms for the review.

`StoreView.open(path)` is what the review page uses: it reads and sets verdicts while
a daemon may be writing the same store (SQLite WAL), so it never runs recovery and
takes no lock. `DefectStore` (the writing side) offers the same methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rope_inspect.errors import StoreError
from rope_inspect.storage.index import DefectIndex, DefectQuery
from rope_inspect.storage.record import VERDICTS, DefectRecord, utc_iso

INDEX_FILE = "index.sqlite"


@dataclass
class DefectPage:
    """One page of a listing and the total that matched the filters."""

    items: list[DefectRecord]
    total: int
    offset: int
    limit: int


@dataclass
class Histogram:
    """Counts per bin; `edges` has one more entry than `counts`."""

    edges: np.ndarray
    counts: np.ndarray


def _nice_step(span: float, max_bins: int) -> float:
    raw = max(span, 1e-9) / max_bins
    magnitude = 10 ** np.floor(np.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _binned(values: np.ndarray, step: float, start: float | None = None) -> Histogram:
    if values.size == 0:
        return Histogram(np.array([0.0, step]), np.zeros(1, dtype=np.int64))
    low = np.floor(values.min() / step) * step if start is None else start
    n_bins = int(np.floor((values.max() - low) / step)) + 1
    edges = low + step * np.arange(n_bins + 1)
    counts = np.bincount(((values - low) // step).astype(np.int64), minlength=n_bins)
    return Histogram(edges, counts[:n_bins])


class StoreView:
    """Queries and verdicts over the index of a store folder."""

    def __init__(self, root: Path, index: DefectIndex) -> None:
        self.root = root
        self.index = index

    @classmethod
    def open(cls, root: Path) -> StoreView:
        """Open an existing store for review; StoreError when there is none."""
        if not (root / INDEX_FILE).is_file():
            raise StoreError(
                f"{root} holds no defect store ({INDEX_FILE} is missing)",
                "pass the store folder of the daemon (store.path in its config)",
            )
        return cls(root, DefectIndex(root / INDEX_FILE))

    def close(self) -> None:
        self.index.close()

    def list_defects(self, query: DefectQuery) -> DefectPage:
        items = self.index.query(query)
        return DefectPage(items, self.index.count(query), query.offset, query.limit)

    def get(self, defect_id: str) -> DefectRecord | None:
        return self.index.get(defect_id)

    def verdict_counts(self, query: DefectQuery | None = None) -> dict[str, int]:
        return self.index.verdict_counts(query)

    def set_verdict(
        self, defect_id: str, verdict: str | None, who: str
    ) -> DefectRecord | None:
        """Record a QA verdict ("defect", "false_alarm" or None to clear) with who and
        when; None when the defect does not exist."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(
                f"verdict must be one of {VERDICTS} or None, not {verdict!r}"
            )
        if not self.index.set_verdict(
            defect_id, verdict, who[:64], utc_iso(time.time())
        ):
            return None
        return self.index.get(defect_id)

    def lines(self) -> list[str]:
        return sorted(self.index.lines())

    def get_meta(self, key: str) -> Any:
        return self.index.get_meta(key)

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value in the index, e.g. "calibration" for the review page."""
        self.index.set_meta(key, value)

    def per_metre(self, query: DefectQuery, max_bins: int = 60) -> Histogram:
        """Defects along the rope; bins of 1, 2 or 5 x 10^k metres."""
        values = self.index.column_values("position_m", query)
        span = float(values.max() - values.min()) if values.size else 1.0
        return _binned(values, max(_nice_step(span, max_bins), 1.0))

    def per_hour(self, query: DefectQuery) -> Histogram:
        """Defects per clock hour (UTC); edges are epoch seconds."""
        values = self.index.column_values("epoch", query)
        return _binned(values, 3600.0)

    def score_histogram(self, query: DefectQuery, bins: int = 25) -> Histogram:
        """Scores over [0, max(1, highest score)] in `bins` equal bins."""
        values = self.index.column_values("score", query)
        top = max(1.0, float(values.max())) if values.size else 1.0
        counts, edges = np.histogram(values, bins=bins, range=(0.0, top))
        return Histogram(edges, counts)
