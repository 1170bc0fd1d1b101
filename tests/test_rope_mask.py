"""Rope masks: GrabCut on a synthetic rope, fallbacks, envelope and the disk cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from rope_inspect.vision.rope_mask import (
    MaskCache,
    grabcut_rope_mask,
    profile_band,
    rope_envelope,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec3d-rope"


def rope_image(height: int = 120, width: int = 240, top: int = 45, seed: int = 0):
    """Dark noisy foam with a bright, textured band (rows top..top+30)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(45, 4, (height, width, 3))
    cols = np.arange(width)[None, :]
    rows = np.arange(30)[:, None]
    strands = 60 + 70 * (np.sin((cols + 2 * rows) / 5.0) > 0.3)
    image[top : top + 30] = strands[..., None] + rng.normal(0, 15, (30, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_band_mask_on_synthetic_rope() -> None:
    image = rope_image()
    result = grabcut_rope_mask(image, "horizontal", downscale=2, iterations=3)
    assert result.fallback is None
    assert result.mask.shape == image.shape[:2]
    rows = result.mask.mean(axis=1)
    assert rows[50:70].mean() > 0.8  # inside the band
    assert rows[:35].max() < 0.05 and rows[85:].max() < 0.05  # the foam


def test_vertical_axis_transposes() -> None:
    image = np.ascontiguousarray(rope_image().transpose(1, 0, 2))
    result = grabcut_rope_mask(image, "vertical", downscale=2)
    assert result.fallback is None
    assert result.mask[:, 50:70].mean() > 0.8
    assert result.mask[:, :35].mean() < 0.05


def test_uniform_image_falls_back_with_warning() -> None:
    image = np.full((64, 128, 3), 90, np.uint8)
    with capture_logs() as logs:
        result = grabcut_rope_mask(image)
    assert result.fallback == "no_rope_contrast"
    assert result.mask.all()
    assert any(e["event"] == "rope_mask_fallback" for e in logs)


def test_band_filling_the_frame_falls_back() -> None:
    # a rope so close that only thin dark gaps between strands remain: no foam rows
    rows = np.where(np.arange(100) % 7 < 5, 140, 40).astype(np.uint8)
    image = np.repeat(np.repeat(rows[:, None, None], 120, axis=1), 3, axis=2)
    result = grabcut_rope_mask(image)
    assert result.fallback == "no_background"
    assert result.mask.all()


def test_profile_band_closes_a_dark_strand() -> None:
    gray = np.full((200, 50), 45, np.uint8)
    gray[60:80] = 120
    gray[80:88] = 50  # a dark gap between strands
    gray[88:120] = 110
    assert profile_band(gray) is not None
    start, stop = profile_band(gray)  # type: ignore[misc]
    assert start <= 62 and stop >= 118


def test_envelope_fills_holes_and_widens() -> None:
    mask = np.zeros((100, 60), bool)
    mask[40:44] = True  # upper strand edge
    mask[56:60] = True  # lower strand edge, hole in between
    envelope = rope_envelope(mask, margin_px=0)
    assert envelope[40:60].all() and not envelope[:40].any()
    wide = rope_envelope(mask, margin_px=10)
    assert wide[31:69, 30].all()
    assert not wide[:28].any() and not wide[72:].any()
    assert not rope_envelope(np.zeros((10, 10), bool), 5).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_envelope_is_the_exact_euclidean_widening_of_the_filled_band(seed: int) -> None:
    """Against OpenCV's precise distance transform of the filled band: same pixels,
    for a wavy rope with gaps (columns without rope) and a band touching the frame."""
    rng = np.random.default_rng(seed)
    height, width, margin = 120, 300, int(rng.integers(5, 40))
    centre = 60 + 25 * np.sin(np.arange(width) / rng.uniform(8, 30))
    half = rng.integers(4, 15, size=width)
    rows = np.arange(height)[:, None]
    mask = np.abs(rows - centre[None, :]) <= half[None, :]
    mask[:, 100:130] = False  # a gap along the rope
    mask[:5, 200:220] = True  # rope touching the top edge
    envelope = rope_envelope(mask, margin)

    filled = rope_envelope(mask, 0)
    outside = (~filled).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    np.testing.assert_array_equal(envelope, distance <= margin)
    vertical = rope_envelope(np.ascontiguousarray(mask.T), margin, "vertical")
    np.testing.assert_array_equal(vertical, envelope.T)


@pytest.mark.parametrize("gap", [0, 60])
def test_envelope_is_exact_across_a_step_in_the_rope(gap: int) -> None:
    """Rope high on the left, low on the right (a step, with or without a gap of
    missing columns): the widened band is two lobes, not their hull."""
    mask = np.zeros((200, 200), bool)
    mask[10:21, :70] = True
    mask[150:161, 70 + gap :] = True
    envelope = rope_envelope(mask, 40)
    outside = (~rope_envelope(mask, 0)).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    np.testing.assert_array_equal(envelope, distance <= 40)
    if gap:
        assert not envelope[80:100, 100].any(), "the gap between the lobes stays out"


def test_cache_hit_on_same_content(tmp_path: Path) -> None:
    cache = MaskCache(tmp_path / "cache")
    image = rope_image()
    first = cache.get(image, "horizontal", 2, 3)
    second = cache.get(image.copy(), "horizontal", 2, 3)
    assert (cache.misses, cache.hits) == (1, 1)
    assert np.array_equal(first.mask, second.mask)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    cache.get(image, "horizontal", 4, 3)  # other parameters: another entry
    assert cache.misses == 2

    fresh = MaskCache(tmp_path / "cache")  # a new process reads the same files
    uniform = np.full((64, 128, 3), 90, np.uint8)
    fresh.get(uniform)
    again = MaskCache(tmp_path / "cache").get(uniform)
    assert again.fallback == "no_rope_contrast"


@pytest.mark.data
def test_real_rope_masks_cover_the_band() -> None:
    if not DATA.is_dir():
        pytest.skip(f"real rope photographs not found at {DATA}")
    import cv2

    for path in sorted((DATA / "test" / "good").glob("*.png"))[:3]:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        result = grabcut_rope_mask(image)
        assert result.fallback is None
        share = result.mask.mean()
        assert 0.15 < share < 0.45, (path, share)
