"""The inspection stage's rope mask: GrabCut off the hot path, a cheap edge check on it.

GrabCut (`rope_mask.grabcut_rope_mask`) takes milliseconds even at reduced resolution,
so it runs on the first frame (synchronously, before inspection starts) and then in a
worker thread: every `refresh_every` frames, or early when the per-frame edge check sees
the rope band move by more than `edge_shift_px`. The check reads a few hundred pixels
(strips of columns, every `downscale`-th row), finds the band's edges per strip against
the rope/background levels measured at the last refresh, and compares them with the
edges found on that refresh's own frame. The hot path gets the current envelope (holes
filled, widened by `envelope_margin_px`: defects stick out of the rope) as an array
that is never changed after it is published; a refresh publishes a new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from rope_inspect.config import MaskConfig
from rope_inspect.log import get_logger
from rope_inspect.vision.rope_mask import (
    RopeAxis,
    RopeMaskResult,
    grabcut_rope_mask,
    rope_envelope,
)

log = get_logger(__name__)

Segmenter = Callable[[np.ndarray], RopeMaskResult]

STRIP_STEP = 32  # px along the rope between sampled strips
STRIP_WIDTH = 16  # px averaged in each strip
MIN_CONTRAST = 4.0  # grey levels between rope and background for the check to work


@dataclass(frozen=True)
class EdgeReference:
    """Rope/background level and the band edges (profile rows) at the last refresh."""

    threshold: float
    polarity: float  # +1: rope brighter than the background
    edges: np.ndarray  # 2 x strips: first and last rope row, interpolated
    valid: np.ndarray  # strips where the band was found


class EdgeProbe:
    """Band edges across the rope from a strided sample of the frame.

    Works in small buffers of its own (one probe per thread): a check costs a few
    dozen numpy calls on a rows x strips array, whatever the frame size.
    """

    def __init__(self, shape: tuple[int, ...], axis: str, downscale: int) -> None:
        self.axis = axis
        height, width = shape[:2] if axis == "horizontal" else shape[1::-1]
        self.step = max(1, downscale)
        self.rows = height // self.step
        self.strips = max(1, width // STRIP_STEP)
        self.strip_width = min(STRIP_WIDTH, width)
        grid = (self.rows, self.strips)
        self._sums = np.empty(grid, np.uint16)  # <= 3 * STRIP_WIDTH * 255
        self._profile = np.empty(grid, np.float32)
        self._levels = np.empty(grid, np.float32)
        self._rope = np.empty(grid, bool)
        self._index = np.empty((2, self.strips), np.intp)
        self._outside = np.empty((2, self.strips), np.intp)
        self._inward = np.array([[1], [-1]], np.intp)
        self._columns = np.arange(self.strips)

    def _sample(self, array: np.ndarray) -> np.ndarray:
        """Every `step`-th row, first `strip_width` px of every `STRIP_STEP`: a view
        rows x strips x strip_width (x channels)."""
        if self.axis == "vertical":
            array = array.swapaxes(0, 1)
        used = array[: self.rows * self.step, : self.strips * STRIP_STEP]
        shape = (self.rows, self.step, self.strips, STRIP_STEP, *array.shape[2:])
        return used.reshape(shape)[:, 0, :, : self.strip_width]

    def profile(self, image: np.ndarray) -> np.ndarray:
        """Mean grey level of each sampled row of each strip (buffer reused)."""
        if self.axis == "horizontal" and image.flags.c_contiguous:
            # pixels and channels of a strip lie side by side: one flat reduction
            rows, width = self.rows * self.step, self.strips * STRIP_STEP
            flat = image[:rows, :width].reshape(self.rows, self.step, self.strips, -1)
            np.add.reduce(flat[:, 0, :, : 3 * self.strip_width], axis=2, out=self._sums)
        else:
            np.add.reduce(self._sample(image), axis=(2, 3), out=self._sums)
        # cast by copy, then scale in place: a mixed-type ufunc allocates a buffer
        np.copyto(self._profile, self._sums)
        self._profile *= 1.0 / (3 * self.strip_width)
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
        return EdgeReference(threshold, polarity, edges.copy(), valid.copy())

    def edges(
        self, profile: np.ndarray, threshold: float, polarity: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and last rope row of each strip (2 x strips, interpolated between
        rows where the level crosses the threshold) and the strips holding rope."""
        levels, rope, index = self._levels, self._rope, self._index
        np.subtract(profile, threshold, out=levels)
        if polarity < 0:
            np.negative(levels, out=levels)
        np.greater(levels, 0, out=rope)
        valid = rope.any(axis=0)
        index[0] = rope.argmax(axis=0)
        index[1] = self.rows - 1 - rope[::-1].argmax(axis=0)

        outside = self._outside
        np.subtract(index, self._inward, out=outside)
        np.clip(outside, 0, self.rows - 1, out=outside)
        low, high = levels[outside, self._columns], levels[index, self._columns]
        span = high - low
        fraction = np.divide(-low, span, out=np.zeros_like(span), where=span > 0)
        np.clip(fraction, 0.0, 1.0, out=fraction)
        fraction *= self._inward
        return fraction + outside, np.asarray(valid)

    def shift_px(self, image: np.ndarray, ref: EdgeReference) -> float:
        """How far the band's edges moved since `ref`, in full-size pixels: the larger
        of the top and bottom moves, each the median over strips; inf when the band
        is lost in most strips."""
        edges, valid = self.edges(self.profile(image), ref.threshold, ref.polarity)
        both = valid & ref.valid
        count = int(np.count_nonzero(both))
        if count == 0 or count * 4 < int(np.count_nonzero(ref.valid)):
            return float("inf")
        moves = (edges - ref.edges)[:, both]
        moves.sort(axis=1)
        median = (moves[:, (count - 1) // 2] + moves[:, count // 2]) / 2
        return float(np.abs(median).max()) * self.step


@dataclass(frozen=True)
class _Refresh:
    mask: np.ndarray
    envelope: np.ndarray
    reference: EdgeReference | None
    reason: str
    seconds: float
    envelope_px: int


class RopeMaskTracker:
    """The current rope envelope for every frame, kept fresh by a worker thread.

    `update(image)` is the hot path: it adopts a finished refresh, runs the edge check
    and, when a refresh is due, copies the frame for the worker; it returns the current
    envelope (bool H x W, never modified after publication) without allocating it.
    The first `update` (or `start`) computes the first mask synchronously.
    """

    def __init__(
        self,
        mask_cfg: MaskConfig,
        axis: RopeAxis = "horizontal",
        segment: Segmenter | None = None,
    ) -> None:
        self.cfg = mask_cfg
        self.axis = axis
        self.segment: Segmenter = segment or partial(
            grabcut_rope_mask,
            axis=axis,
            downscale=mask_cfg.downscale,
            iterations=mask_cfg.grabcut_iterations,
        )
        self.mask: np.ndarray | None = None
        self.envelope: np.ndarray | None = None
        self.version = 0
        self.frames = 0
        self.refreshes = 0
        self.edge_refreshes = 0
        self.refresh_errors = 0
        self.fallbacks = 0
        self.refresh_seconds = 0.0
        self.last_shift_px = 0.0
        self._since_refresh = 0
        self._probe: EdgeProbe | None = None
        self._worker_probe: EdgeProbe | None = None
        self._reference: EdgeReference | None = None
        self._snapshot: np.ndarray | None = None
        self._reason = ""
        self._pending: _Refresh | None = None
        self._busy = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, image: np.ndarray) -> np.ndarray:
        """Compute the first mask from `image` now and start the worker thread."""
        self.wait_idle()
        self._probe = EdgeProbe(image.shape, self.axis, self.cfg.downscale)
        self._worker_probe = EdgeProbe(image.shape, self.axis, self.cfg.downscale)
        self._snapshot = np.empty_like(image)
        self._pending = None
        self._since_refresh = 0
        envelope = self._adopt(self._compute(image, self._worker_probe, "first_frame"))
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="rope-mask", daemon=True
            )
            self._thread.start()
        return envelope

    def update(self, image: np.ndarray) -> np.ndarray:
        """The envelope for this frame; schedules a refresh when one is due."""
        self.frames += 1
        envelope = self.envelope
        if envelope is None or self._probe is None or envelope.shape != image.shape[:2]:
            return self.start(image)
        self._since_refresh += 1
        busy = self._busy
        pending = self._pending
        if pending is not None:
            self._pending = None
            envelope = self._adopt(pending)
        if not busy:
            self._check(image, self._probe)
        return envelope

    def _check(self, image: np.ndarray, probe: EdgeProbe) -> None:
        if self._since_refresh >= self.cfg.refresh_every:
            self._request(image, "periodic")
            return
        if self._reference is None:
            return
        self.last_shift_px = probe.shift_px(image, self._reference)
        if self.last_shift_px > self.cfg.edge_shift_px:
            self.edge_refreshes += 1
            self._request(image, "edge_moved")

    def _request(self, image: np.ndarray, reason: str) -> None:
        """Hand a copy of the frame to the worker (the ring slot is reused soon)."""
        if self._snapshot is None:
            return
        np.copyto(self._snapshot, image)
        self._reason = reason
        self._since_refresh = 0
        self._busy = True
        self._wake.set()

    def _compute(self, image: np.ndarray, probe: EdgeProbe, reason: str) -> _Refresh:
        started = time.perf_counter()
        result = self.segment(image)
        envelope = rope_envelope(result.mask, self.cfg.envelope_margin_px, self.axis)
        envelope.flags.writeable = False
        reference = probe.reference(image, result.mask)
        if result.fallback is not None:
            self.fallbacks += 1
        seconds = time.perf_counter() - started
        pixels = int(np.count_nonzero(envelope))
        return _Refresh(result.mask, envelope, reference, reason, seconds, pixels)

    def _adopt(self, refresh: _Refresh) -> np.ndarray:
        self.mask, self.envelope = refresh.mask, refresh.envelope
        self._reference = refresh.reference
        self.version += 1
        self.refreshes += 1
        self.refresh_seconds += refresh.seconds
        log.info(
            "rope_mask_refreshed",
            reason=refresh.reason,
            version=self.version,
            frame=self.frames,
            ms=round(refresh.seconds * 1000, 1),
            envelope_px=refresh.envelope_px,
            edge_check=refresh.reference is not None,
        )
        return refresh.envelope

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(0.5):
                continue
            self._wake.clear()
            if self._stop.is_set():
                break
            snapshot, probe = self._snapshot, self._worker_probe
            if snapshot is None or probe is None:
                continue
            try:
                self._pending = self._compute(snapshot, probe, self._reason)
            except Exception as exc:  # a failed refresh keeps the current envelope
                self.refresh_errors += 1
                log.exception("rope_mask_refresh_failed", error=str(exc))
            finally:
                self._busy = False

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until no refresh is in flight (tests, shutdown); True when idle."""
        deadline = time.monotonic() + timeout_s
        while self._busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker thread (a refresh in flight is finished, then dropped)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("rope_mask_worker_still_running", timeout_s=timeout_s)
            self._thread = None
