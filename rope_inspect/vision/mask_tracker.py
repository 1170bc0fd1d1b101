"""The inspection stage's rope mask: GrabCut off the hot path, a cheap edge check on it.

GrabCut (`rope_mask.grabcut_rope_mask`) takes milliseconds even at reduced resolution,
so it runs on the first frame (synchronously, before inspection starts) and then in a
worker thread: every `refresh_every` frames, or early when the per-frame edge check
(`edge_probe.EdgeProbe`) sees the rope band move by more than `edge_shift_px` against
the edges found on the last refresh's own frame. The hot path gets the current
envelope (holes filled, widened by `envelope_margin_px`: defects stick out of the
rope) as an array that is never changed after it is published; a refresh publishes a
new one.

With `refresh_mode: on_frame` (a replay of separate photographs) there is no worker:
each frame is edge-checked first and, when its rope moved (or the last mask gave no
edge reference to compare with), GrabCut runs for that very frame, so no frame is
inspected under another frame's mask; photographs of a rope lying in the same place
keep the mask and cost the check only.
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
from rope_inspect.vision.edge_probe import EdgeProbe, EdgeReference
from rope_inspect.vision.rope_mask import (
    RopeAxis,
    RopeMaskResult,
    grabcut_rope_mask,
    rope_envelope,
)

__all__ = ["EdgeProbe", "EdgeReference", "RopeMaskTracker", "Segmenter"]

log = get_logger(__name__)

Segmenter = Callable[[np.ndarray], RopeMaskResult]


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
        self.on_frame = mask_cfg.refresh_mode == "on_frame"
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
        """Compute the first mask from `image` now and start the worker thread (none
        is needed with `refresh_mode: on_frame`)."""
        self.wait_idle()
        self._probe = EdgeProbe(image.shape, self.axis, self.cfg.downscale)
        self._worker_probe = EdgeProbe(image.shape, self.axis, self.cfg.downscale)
        self._snapshot = None if self.on_frame else np.empty_like(image)
        self._pending = None
        self._since_refresh = 0
        envelope = self._adopt(self._compute(image, self._worker_probe, "first_frame"))
        if self._thread is None and not self.on_frame:
            self._thread = threading.Thread(
                target=self._run, name="rope-mask", daemon=True
            )
            self._thread.start()
        return envelope

    def update(self, image: np.ndarray) -> np.ndarray:
        """The envelope for this frame; schedules a refresh when one is due (with
        `refresh_mode: on_frame`, runs it now, for this frame)."""
        self.frames += 1
        envelope = self.envelope
        if envelope is None or self._probe is None or envelope.shape != image.shape[:2]:
            return self.start(image)
        self._since_refresh += 1
        if self.on_frame:
            return self._update_now(image, self._probe, envelope)
        busy = self._busy
        pending = self._pending
        if pending is not None:
            self._pending = None
            envelope = self._adopt(pending)
        if not busy:
            reason = self._due(image, self._probe)
            if reason is not None:
                self._request(image, reason)
        return envelope

    def _update_now(
        self, image: np.ndarray, probe: EdgeProbe, envelope: np.ndarray
    ) -> np.ndarray:
        """On-frame mode: the current envelope while the rope's edges stay within
        `edge_shift_px`; a mask of this very frame when they moved, when the last
        mask gave no edge reference (nothing to compare with) or when one is due."""
        reason = "no_edge_reference" if self._reference is None else None
        reason = reason or self._due(image, probe)
        if reason is None:
            return envelope
        self._since_refresh = 0
        return self._adopt(self._compute(image, probe, reason))

    def _due(self, image: np.ndarray, probe: EdgeProbe) -> str | None:
        """Why a refresh is due now ("periodic", "edge_moved"), or None."""
        if self._since_refresh >= self.cfg.refresh_every:
            return "periodic"
        if self._reference is None:
            return None
        self.last_shift_px = probe.shift_px(image, self._reference)
        if self.last_shift_px > self.cfg.edge_shift_px:
            self.edge_refreshes += 1
            return "edge_moved"
        return None

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
