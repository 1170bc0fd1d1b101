"""The mask tracker's per-frame edge check: where the rope band's edges lie now.

The check reads a few hundred pixels (strips of columns across the rope, every
`downscale`-th row), finds the band's first and last row per strip against the
rope/background level measured when the mask was last computed, and compares them
with the edges found on that frame. It runs on the hot path of every frame, so once
warm it allocates nothing: every step writes into buffers of the probe, OpenCV does
what numpy would do with a temporary iterator (reductions, sorting), and the strided
view of each frame buffer (the ring's slots) is made once (`ViewCache`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rope_inspect.vision.frame_views import ViewCache

STRIP_STEP = 32  # px along the rope between sampled strips
STRIP_WIDTH = 16  # px averaged in each strip
MIN_CONTRAST = 4.0  # grey levels between rope and background for the check to work
EXCLUDED = 1e9  # a strip without the band in both frames sorts after every move
MIN_SPAN = 1e-6  # profile levels that differ at all differ by >= 1/48


@dataclass(frozen=True)
class EdgeReference:
    """Rope/background level and the band edges (profile rows) at the last refresh."""

    threshold: float
    polarity: float  # +1: rope brighter than the background
    edges: np.ndarray  # 2 x strips float32: first and last rope row, interpolated
    valid: np.ndarray  # strips where the band was found
    weights: np.ndarray  # 2 x strips float32: 1 in the valid strips, else 0
    count: int  # valid strips


def _const(value: float) -> np.ndarray:
    """A float32 0-d operand: a Python number would be converted on every call."""
    return np.array(value, np.float32)


class EdgeProbe:
    """Band edges across the rope from a strided sample of the frame.

    Works in small buffers of its own (one probe per thread): a check costs a few
    dozen calls on a rows x strips array, whatever the frame size. `profile` and
    `edges` return those buffers: valid until the probe's next call.
    """

    def __init__(self, shape: tuple[int, ...], axis: str, downscale: int) -> None:
        self.axis = axis
        height, width = shape[:2] if axis == "horizontal" else shape[1::-1]
        self.step = max(1, downscale)
        self.rows = height // self.step
        self.strips = max(1, width // STRIP_STEP)
        self.strip_width = min(STRIP_WIDTH, width)
        grid, pair = (self.rows, self.strips), (2, self.strips)
        self._views = ViewCache(self._sample)
        self._pixels = np.empty((*grid, self.strip_width, *shape[2:]), np.uint8)
        self._pixel_rows = self._pixels.reshape(self.rows * self.strips, -1)
        self._means = np.empty((self.rows * self.strips, 1), np.float32)
        self._profile = self._means.reshape(grid)
        self._levels = np.empty(grid, np.float32)
        self._levels_flat = self._levels.reshape(-1)
        self._rope = np.empty(grid, np.float32)  # 1 where the level is the rope's
        self._candidates = np.empty(grid, np.float32)
        row = np.arange(self.rows, dtype=np.float32)[:, None].repeat(self.strips, 1)
        self._row_below, self._row_above = row - self.rows, row + 1
        self._zero, self._one, self._no_row = _const(0), _const(1), _const(self.rows)
        self._last_row, self._threshold = _const(self.rows - 1), _const(0)
        self._min_span, self._excluded = _const(MIN_SPAN), _const(EXCLUDED)
        self._strip_count = _const(self.strips)
        self._index = np.empty(pair, np.float32)  # first / last rope row
        self._first, self._last = self._index[0:1], self._index[1:2]
        self._outside = np.empty(pair, np.float32)  # the row beyond it
        self._flat = np.empty(pair, np.float32)
        self._flat_index = np.empty(pair, np.intp)
        self._low, self._high = np.empty(pair, np.float32), np.empty(pair, np.float32)
        self._edges = np.empty(pair, np.float32)
        self._inward = np.array([[1.0], [-1.0]], np.float32).repeat(self.strips, 1)
        self._column = np.arange(self.strips, dtype=np.float32)[None].repeat(2, 0)
        self._found = np.empty((1, self.strips), np.float32)
        self._found_row = self._found[0]
        self._weights = np.empty(pair, np.float32)
        self._valid = np.empty(self.strips, bool)
        self._both = np.empty(pair, np.float32)
        self._both_row = self._both[0:1]
        self._moves = np.empty(pair, np.float32)
        self._sorted = np.empty(pair, np.float32)

    def _sample(self, array: np.ndarray) -> np.ndarray:
        """Every `step`-th row, first `strip_width` px of every `STRIP_STEP`: a view
        rows x strips x strip_width (x channels)."""
        if self.axis == "vertical":
            array = array.swapaxes(0, 1)
        used = array[: self.rows * self.step, : self.strips * STRIP_STEP]
        shape = (self.rows, self.step, self.strips, STRIP_STEP, *array.shape[2:])
        return used.reshape(shape)[:, 0, :, : self.strip_width]

    def profile(self, image: np.ndarray) -> np.ndarray:
        """Mean grey level of each sampled row of each strip (rows x strips)."""
        np.copyto(self._pixels, self._views.get(image))
        cv2.reduce(self._pixel_rows, 1, cv2.REDUCE_AVG, self._means, cv2.CV_32F)
        return self._profile

    def reference(self, image: np.ndarray, mask: np.ndarray) -> EdgeReference | None:
        """Levels and edges of `image` whose rope is `mask`; None if it has no band."""
        profile = self.profile(image)
        inside = self._sample(mask).mean(axis=2) > 0.5
        if inside.all() or not inside.any():
            return None
        rope, background = float(profile[inside].mean()), float(profile[~inside].mean())
        if abs(rope - background) < MIN_CONTRAST:
            return None
        threshold = (rope + background) / 2
        polarity = 1.0 if rope > background else -1.0
        edges, valid = self.edges(profile, threshold, polarity)
        return EdgeReference(
            threshold,
            polarity,
            edges.copy(),
            valid.copy(),
            self._weights.copy(),
            int(np.count_nonzero(valid)),
        )

    def edges(
        self, profile: np.ndarray, threshold: float, polarity: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and last rope row of each strip (2 x strips, interpolated between
        rows where the level crosses the threshold) and the strips holding rope."""
        levels, rope, candidates, index = (
            self._levels,
            self._rope,
            self._candidates,
            self._index,
        )
        self._threshold.fill(threshold)
        np.subtract(profile, self._threshold, out=levels)
        if polarity < 0:
            np.negative(levels, out=levels)
        cv2.threshold(levels, 0.0, 1.0, cv2.THRESH_BINARY, rope)
        # first rope row: the least of (row where rope, else rows) down each strip
        np.multiply(self._row_below, rope, out=candidates)
        np.add(candidates, self._no_row, out=candidates)
        cv2.reduce(candidates, 0, cv2.REDUCE_MIN, self._first)
        # last rope row: the greatest of (row where rope, else -1)
        np.multiply(self._row_above, rope, out=candidates)
        np.subtract(candidates, self._one, out=candidates)
        cv2.reduce(candidates, 0, cv2.REDUCE_MAX, self._last)
        cv2.reduce(rope, 0, cv2.REDUCE_MAX, self._found)
        np.greater(self._found_row, self._zero, out=self._valid)
        cv2.repeat(self._found, 2, 1, self._weights)
        self._clamp(index)  # strips without rope: any row, they are not compared

        outside = self._outside
        np.subtract(index, self._inward, out=outside)
        self._clamp(outside)
        low, span = self._gather(outside, self._low), self._gather(index, self._high)
        np.subtract(span, low, out=span)
        np.maximum(span, self._min_span, out=span)  # span 0: low > 0, fraction 0
        fraction = np.negative(low, out=low)
        np.divide(fraction, span, out=fraction)
        np.maximum(fraction, self._zero, out=fraction)
        np.minimum(fraction, self._one, out=fraction)
        np.multiply(fraction, self._inward, out=fraction)
        return np.add(fraction, outside, out=self._edges), self._valid

    def _clamp(self, rows: np.ndarray) -> None:
        np.maximum(rows, self._zero, out=rows)
        np.minimum(rows, self._last_row, out=rows)

    def _gather(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`levels[rows, column]` for the 2 x strips `rows`, into `out`."""
        np.multiply(rows, self._strip_count, out=self._flat)
        np.add(self._flat, self._column, out=self._flat)
        np.copyto(self._flat_index, self._flat, casting="unsafe")
        return self._levels_flat.take(self._flat_index, None, out, "clip")

    def shift_px(self, image: np.ndarray, ref: EdgeReference) -> float:
        """How far the band's edges moved since `ref`, in full-size pixels: the larger
        of the top and bottom moves, each the median over strips; inf when the band
        is lost in most strips."""
        edges, _ = self.edges(self.profile(image), ref.threshold, ref.polarity)
        both, moves, ordered = self._both, self._moves, self._sorted
        np.multiply(self._weights, ref.weights, out=both)
        count = cv2.countNonZero(self._both_row)
        if count == 0 or count * 4 < ref.count:
            return float("inf")
        np.subtract(edges, ref.edges, out=moves)
        np.multiply(moves, both, out=moves)
        # strips not in both frames: moved by EXCLUDED, sorted after the others
        np.subtract(self._one, both, out=ordered)
        np.multiply(ordered, self._excluded, out=ordered)
        np.add(moves, ordered, out=moves)
        cv2.sort(moves, cv2.SORT_EVERY_ROW | cv2.SORT_ASCENDING, ordered)
        low, high = (count - 1) // 2, count // 2
        top = (ordered.item(0, low) + ordered.item(0, high)) / 2
        bottom = (ordered.item(1, low) + ordered.item(1, high)) / 2
        return max(abs(top), abs(bottom)) * self.step
