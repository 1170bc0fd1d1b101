"""Rope masks: where the rope lies in a frame, from GrabCut seeded by a profile.

The rope is a bright textured band on a dark background. Its intensity profile across
the rope axis (mean of each row for a horizontal rope) gives a band that seeds GrabCut,
which runs at reduced resolution and is upsampled to the frame. Training uses the mask
to place tiles and synthetic anomalies; evaluation and the inspection stage use the
rope *envelope* (holes between strands filled, widened by a margin, because real
defects stick out beyond the rope edge). GrabCut is slow, so masks are cached on disk
by image content.

When GrabCut cannot run (a uniform frame, no background rows, an empty result), a
documented fallback is used and a warning logged, never an exception:

- ``no_rope_contrast``: no band stands out of the profile -> the whole frame is rope;
- ``no_background``: the band covers (nearly) the whole frame -> the whole frame;
- ``grabcut_failed`` / ``grabcut_empty``: GrabCut raised or found nothing -> the band.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from rope_inspect.log import get_logger

log = get_logger(__name__)

RopeAxis = Literal["horizontal", "vertical"]

# A band must exceed the background level by this many grey levels to count as rope.
MIN_CONTRAST = 6.0
# Fraction of the axis the band may cover and still leave background for GrabCut.
MAX_BAND_FRACTION = 0.9


@dataclass(frozen=True)
class RopeMaskResult:
    """A rope mask at full frame size and the fallback used, if any."""

    mask: np.ndarray  # bool H x W
    fallback: str | None = None


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an H x W x 3 uint8 image, got {image.shape} {image.dtype}"
        )


def profile_band(gray: np.ndarray) -> tuple[int, int] | None:
    """Rows [start, stop) of the bright band in a horizontal-rope grey image, or None.

    The row profile is smoothed; the background level is its 20th percentile; rows above
    background + max(MIN_CONTRAST, 15 % of the peak contrast) form candidate runs, and
    the run that holds the peak, after closing gaps shorter than a tenth of the axis (a
    dark strand in the middle of the rope), is the band.
    """
    profile = gray.astype(np.float32).mean(axis=1)
    size = max(3, (len(profile) // 40) | 1)
    profile = cv2.GaussianBlur(profile.reshape(-1, 1), (1, size), 0).ravel()
    background = float(np.percentile(profile, 20))
    peak_row = int(np.argmax(profile))
    contrast = float(profile[peak_row]) - background
    if contrast < MIN_CONTRAST:
        return None

    above = (profile > background + max(MIN_CONTRAST, 0.15 * contrast)).astype(np.uint8)
    gap = np.ones((max(3, len(profile) // 10), 1), np.uint8)
    above = cv2.morphologyEx(above.reshape(-1, 1), cv2.MORPH_CLOSE, gap).ravel() > 0
    start = peak_row
    while start > 0 and above[start - 1]:
        start -= 1
    stop = peak_row + 1
    while stop < len(above) and above[stop]:
        stop += 1
    return start, stop


def _texture_image(image: np.ndarray) -> np.ndarray:
    """Three channels GrabCut separates better than colour: level, local max, contrast.

    Rope and foam overlap in colour (dark gaps between strands), but the rope is full of
    bright fibres: a local maximum and a local standard deviation mark it everywhere.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    level = cv2.GaussianBlur(gray, (5, 5), 0)
    local_max = cv2.dilate(level, np.ones((5, 5), np.uint8))
    mean = cv2.blur(gray, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(gray * gray, (5, 5)) - mean * mean, 0.0))
    channels = [level, local_max, spread * 4.0]
    return np.dstack([np.clip(c, 0, 255) for c in channels]).astype(np.uint8)


def _grabcut_horizontal(
    image: np.ndarray, band: tuple[int, int], downscale: int, iterations: int
) -> np.ndarray:
    """GrabCut seeded by the band at 1/downscale resolution; bool mask at full size."""
    height, width = image.shape[:2]
    small_w, small_h = max(8, width // downscale), max(8, height // downscale)
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    scale = small_h / height
    start, stop = int(band[0] * scale), int(np.ceil(band[1] * scale))
    pad = max(1, (stop - start) // 2)

    seed = np.full((small_h, small_w), cv2.GC_BGD, np.uint8)
    seed[max(0, start - pad) : min(small_h, stop + pad)] = cv2.GC_PR_BGD
    seed[start:stop] = cv2.GC_PR_FGD
    core = (stop - start) // 3
    seed[start + core : stop - core] = cv2.GC_FGD
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.grabCut(
        _texture_image(small),
        seed,
        (0, 0, 0, 0),
        bgd_model,
        fgd_model,
        iterations,
        cv2.GC_INIT_WITH_MASK,
    )

    foreground = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    full = cv2.resize(foreground * 255, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full >= 128)


def _fallback(mask: np.ndarray, reason: str, **fields: object) -> RopeMaskResult:
    log.warning("rope_mask_fallback", reason=reason, **fields)
    return RopeMaskResult(mask=mask, fallback=reason)


def grabcut_rope_mask(
    image: np.ndarray,
    axis: RopeAxis = "horizontal",
    downscale: int = 4,
    iterations: int = 3,
) -> RopeMaskResult:
    """Rope foreground of an RGB uint8 frame; see the module docstring for fallbacks."""
    _check_image(image)
    if axis == "vertical":
        result = grabcut_rope_mask(
            np.ascontiguousarray(image.transpose(1, 0, 2)),
            "horizontal",
            downscale,
            iterations,
        )
        return RopeMaskResult(np.ascontiguousarray(result.mask.T), result.fallback)

    height, width = image.shape[:2]
    whole = np.ones((height, width), bool)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    band = profile_band(gray)
    if band is None:
        return _fallback(whole, "no_rope_contrast")
    if band[1] - band[0] >= MAX_BAND_FRACTION * height:
        return _fallback(whole, "no_background", band=band)

    band_mask = np.zeros((height, width), bool)
    band_mask[band[0] : band[1]] = True
    try:
        mask = _grabcut_horizontal(image, band, max(1, downscale), max(1, iterations))
    except cv2.error as exc:
        return _fallback(band_mask, "grabcut_failed", band=band, error=str(exc))
    if not mask.any():
        return _fallback(band_mask, "grabcut_empty", band=band)
    return RopeMaskResult(mask=mask, fallback=None)


def rope_envelope(
    mask: np.ndarray, margin_px: int, axis: RopeAxis = "horizontal"
) -> np.ndarray:
    """The rope with the holes between strands filled, widened by `margin_px` pixels.

    Small specks are closed away first; then, across the axis, everything between the
    first and the last rope pixel is filled; then the result is dilated by the margin
    (Euclidean distance). An empty mask gives an empty envelope.
    """
    if axis == "vertical":
        return np.ascontiguousarray(rope_envelope(mask.T, margin_px, "horizontal").T)
    mask_u8 = mask.astype(np.uint8)
    if not mask_u8.any():
        return np.zeros(mask.shape, bool)

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    closed = cv2.morphologyEx(mask_u8, cv2.MORPH_CLOSE, kernel)
    height = mask.shape[0]
    rows = np.arange(height)[:, None]
    present = closed.any(axis=0)
    first = np.where(present, closed.argmax(axis=0), height)
    last = np.where(present, height - 1 - closed[::-1].argmax(axis=0), -1)
    if margin_px > 0 and not _chained(first, last):
        # a gap along the rope, or a step between two columns: the widened columns
        # may not join into one interval per column; the exact transform then
        filled = (rows >= first[None, :]) & (rows <= last[None, :])
        outside = (~filled).astype(np.uint8)
        distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return np.asarray(distance <= margin_px)
    if margin_px > 0:
        first, last = _widen_band(first, last, margin_px)
    return (rows >= first[None, :]) & (rows <= last[None, :])


def _chained(first: np.ndarray, last: np.ndarray) -> bool:
    """Whether the band's columns are one run, each interval touching the next: then
    any window of widened columns joins into one interval (each widened interval holds
    its own, and neighbours' own intervals meet), and `_widen_band` is exact."""
    columns = np.flatnonzero(last >= 0)
    if columns.size == 0 or columns[-1] - columns[0] + 1 != columns.size:
        return columns.size == 0
    top, bottom = first[columns], last[columns]
    return bool(
        np.all(top[1:] <= bottom[:-1] + 1) and np.all(top[:-1] <= bottom[1:] + 1)
    )


def _widen_band(
    first: np.ndarray, last: np.ndarray, margin_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """The band of column intervals [first, last] dilated by a disk of `margin_px`.

    A pixel (y, x) lies within the margin (Euclidean) of the band when some column
    x' with |x - x'| <= m has its interval within floor(sqrt(m^2 - (x - x')^2)) rows
    of y: per column, the new top is the minimum over the 2m + 1 neighbours of
    first[x'] - reach(x - x'), the new bottom the maximum of last[x'] + reach. This
    is exact for a chained band (see `_chained`) and costs W x (2m + 1) operations
    instead of a distance transform of the whole frame; an absent column (first = H,
    last = -1) reaches nothing.
    """
    offsets = np.arange(-margin_px, margin_px + 1)
    reach = np.floor(np.sqrt(margin_px**2 - offsets**2.0)).astype(np.int64)
    big = np.int64(1) << 40
    pad = margin_px
    tops = np.pad(first.astype(np.int64), pad, constant_values=big)
    bottoms = np.pad(last.astype(np.int64), pad, constant_values=-big)
    absent = last < 0
    tops[pad:-pad][absent] = big
    bottoms[pad:-pad][absent] = -big
    windows = np.lib.stride_tricks.sliding_window_view
    new_first = (windows(tops, 2 * pad + 1) - reach).min(axis=1)
    new_last = (windows(bottoms, 2 * pad + 1) + reach).max(axis=1)
    return new_first, new_last


class MaskCache:
    """Rope masks cached on disk, keyed by SHA-256 of image bytes and parameters.

    One ``<key>.npz`` per mask (packed bits + fallback reason), written atomically, so
    parallel loaders and interrupted runs never see half a file.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: np.ndarray, axis: str, downscale: int, iterations: int) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(f"{image.shape}|{axis}|{downscale}|{iterations}|v1".encode())
        return digest.hexdigest()

    def get(
        self,
        image: np.ndarray,
        axis: RopeAxis = "horizontal",
        downscale: int = 4,
        iterations: int = 3,
    ) -> RopeMaskResult:
        """The cached mask of `image`, computing and storing it on a miss."""
        path = self.folder / f"{self.key(image, axis, downscale, iterations)}.npz"
        cached = self._read(path, image.shape[:2])
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        result = grabcut_rope_mask(image, axis, downscale, iterations)
        self._write(path, result)
        return result

    def _read(self, path: Path, shape: tuple[int, ...]) -> RopeMaskResult | None:
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                bits = np.unpackbits(data["bits"])[: shape[0] * shape[1]]
                reason = str(data["fallback"]) or None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("rope_mask_cache_unreadable", path=str(path), error=str(exc))
            return None
        return RopeMaskResult(bits.reshape(shape).astype(bool), reason)

    def _write(self, path: Path, result: RopeMaskResult) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    bits=np.packbits(result.mask.ravel()),
                    fallback=np.array(result.fallback or ""),
                )
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
