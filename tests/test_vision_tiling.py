"""Tile grid over a rope envelope, cutting tiles and stitching maps back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.config import TilingConfig
from rope_inspect.errors import ConfigError, DataError
from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope
from rope_inspect.vision.tiling import RopeTiler, cut_tiles, stitch, tile_grid

H, W, T = 224, 900, 64
DATA = Path(__file__).resolve().parents[1] / "../shared/data/mvtec3d-rope"


def _band(top: int, bottom: int, slope: float = 0.0) -> np.ndarray:
    """A horizontal rope band, optionally tilted (`slope` rows per column)."""
    rows = np.arange(H)[:, None]
    shift = (np.arange(W) * slope)[None, :]
    return (rows >= top + shift) & (rows < bottom + shift)


def _covered(grid_windows: tuple, shape: tuple[int, int]) -> np.ndarray:
    covered = np.zeros(shape, bool)
    for window in grid_windows:
        covered[window] = True
    return covered


@pytest.mark.parametrize("slope", [0.0, 0.05, -0.04])
def test_grid_covers_the_envelope_inside_the_frame(slope: float) -> None:
    envelope = _band(60, 150, slope) if slope >= 0 else _band(120, 200, slope)
    grid = tile_grid(envelope, T, 16, 0.0)

    assert grid.count > 0
    assert not (envelope & ~_covered(grid.windows, envelope.shape)).any()
    for y, x in grid.origins:
        assert 0 <= y <= H - T and 0 <= x <= W - T
        assert envelope[y : y + T, x : x + T].any(), "a tile lies fully off the rope"


def test_horizontal_band_gets_a_narrow_band_of_tiles() -> None:
    grid = tile_grid(_band(80, 140), 128, 16, 0.02)
    rows = set(grid.origins[:, 0].tolist())
    assert len(rows) == 1, "a 60 px rope fits one row of 128 px tiles"
    columns = sorted(grid.origins[:, 1].tolist())
    assert columns[0] == 0 and columns[-1] == W - 128, "last tile shifted inward"
    assert grid.count == 8, "900 px need 8 tiles of 128 px at a 112 px step"
    assert grid.tiles_per_covered() == pytest.approx(8 / (60 * 900 / 128**2))


def test_min_fraction_skips_tiles_with_little_rope() -> None:
    envelope = _band(80, 140)
    envelope[:, 400:] = False
    envelope[100:104, 600:610] = True  # a speck far from the rope
    kept = tile_grid(envelope, T, 16, 0.0)
    skipped = tile_grid(envelope, T, 16, 0.05)
    assert skipped.count < kept.count
    assert all(x < 600 - T for _, x in skipped.origins)


def test_empty_envelope_gives_no_tiles() -> None:
    grid = tile_grid(np.zeros((H, W), bool), T, 16, 0.02)
    assert grid.count == 0 and grid.origins.shape == (0, 2)
    out = np.full((H, W), 7.0, np.float32)
    stitch(np.zeros((0, 1, T, T), np.float32), grid, out)
    assert not out.any()


def test_vertical_rope_gets_a_column_band() -> None:
    envelope = _band(80, 140).T.copy()
    grid = tile_grid(envelope, T, 16, 0.0, axis="vertical")
    assert len(set(grid.origins[:, 1].tolist())) <= 2
    assert not (envelope & ~_covered(grid.windows, envelope.shape)).any()


def test_a_tile_as_tall_as_the_band_covers_it_in_one_row() -> None:
    envelope = _band(10, 210)  # a 200 px band: two rows of 128 px squares
    squares = tile_grid(envelope, 128, 16, 0.02)
    tall = tile_grid(envelope, (224, 128), 16, 0.02)
    assert len(set(squares.origins[:, 0].tolist())) == 2
    assert set(tall.origins[:, 0].tolist()) == {0}, "one row, inside the frame"
    assert tall.count == squares.count // 2 and tall.tile == (224, 128)
    assert not (envelope & ~_covered(tall.windows, envelope.shape)).any()
    assert tall.tiles_per_covered() == pytest.approx(8 * 224 * 128 / (200 * 900))
    ratio = tall.tiles_per_covered() / squares.tiles_per_covered()
    assert ratio == pytest.approx(224 / 256), "one 224 px row instead of two 128 px"


def test_tall_tiles_stitch_and_cut_with_their_shape() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    tiler = RopeTiler(TilingConfig(tile=128, tile_across=224, overlap=16))
    envelope = _band(20, 200, 0.01)
    grid = tiler.grid_for(envelope)
    tiles = tiler.cut(image, grid)
    assert tiles.shape == (grid.count, 224, 128, 3)
    y, x = grid.origins[-1]
    np.testing.assert_array_equal(tiles[-1], image[y : y + 224, x : x + 128])
    frame_map = tiler.stitch(np.full((grid.count, 1, 224, 128), 0.25, np.float32), grid)
    np.testing.assert_allclose(frame_map[envelope], 0.25, rtol=1e-6)


def test_vertical_rope_turns_the_tall_tile_across_it() -> None:
    envelope = _band(10, 210).T.copy()  # 900 x 224, rope along y
    grid = tile_grid(envelope, (128, 224), 16, 0.02, axis="vertical")
    assert set(grid.origins[:, 1].tolist()) == {0} and grid.count == 8
    assert all(w[0].stop - w[0].start == 128 for w in grid.windows)
    assert all(w[1].stop - w[1].start == 224 for w in grid.windows)
    assert not (envelope & ~_covered(grid.windows, envelope.shape)).any()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        tile_grid(_band(80, 140), T, T, 0.0)
    with pytest.raises(DataError, match="smaller than one"):
        tile_grid(np.ones((32, 900), bool), T, 16, 0.0)


def test_cut_tiles_copies_the_windows() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    grid = tile_grid(_band(60, 150), T, 16, 0.0)
    buffer = np.zeros((grid.count + 3, T, T, 3), np.uint8)
    tiles = cut_tiles(image, grid, buffer)
    assert tiles.shape == (grid.count, T, T, 3) and np.shares_memory(tiles, buffer)
    for index, (y, x) in enumerate(grid.origins):
        np.testing.assert_array_equal(tiles[index], image[y : y + T, x : x + T])
    with pytest.raises(ValueError, match="cannot hold"):
        cut_tiles(image, grid, buffer[:1])


def test_constant_maps_stitch_to_the_constant_on_the_envelope() -> None:
    envelope = _band(60, 150, 0.03)
    grid = tile_grid(envelope, T, 24, 0.0)
    maps = np.full((grid.count, 1, T, T), 0.625, np.float32)
    out = np.full((H, W), -1.0, np.float32)
    stitch(maps, grid, out)
    np.testing.assert_allclose(out[envelope], 0.625, rtol=1e-6)
    assert not out[~envelope].any(), "off the envelope the map is zero"


def test_overlaps_are_averaged() -> None:
    envelope = np.ones((T, 2 * T - 16), bool)  # exactly two tiles, 16 px overlap
    grid = tile_grid(envelope, T, 16, 0.0)
    assert grid.origins.tolist() == [[0, 0], [0, T - 16]]
    maps = np.stack([np.full((1, T, T), 0.2), np.full((1, T, T), 0.6)]).astype(
        np.float32
    )
    out = np.zeros(envelope.shape, np.float32)
    stitch(maps, grid, out)
    np.testing.assert_allclose(out[:, : T - 16], 0.2, rtol=1e-6)
    np.testing.assert_allclose(out[:, T - 16 : T], 0.4, rtol=1e-6)
    np.testing.assert_allclose(out[:, T:], 0.6, rtol=1e-6)


def test_tiler_recomputes_only_for_a_new_envelope() -> None:
    tiler = RopeTiler(TilingConfig(tile=T, overlap=16, min_rope_fraction=0.02))
    envelope = _band(60, 150)
    image = np.zeros((H, W, 3), np.uint8)
    grid = tiler.grid_for(envelope)
    first = tiler.cut(image, grid)
    for _ in range(3):
        assert tiler.grid_for(envelope) is grid
    assert tiler.recomputes == 1
    assert np.shares_memory(first, tiler.cut(image, grid))

    hot = tiler.stitch(np.ones((grid.count, 1, T, T), np.float32), grid)
    assert hot.max() == pytest.approx(1.0)
    cold = tiler.stitch(np.zeros((grid.count, 1, T, T), np.float32), grid)
    assert cold is hot and not cold.any(), "the previous frame's map is gone"

    tiler.stitch(np.ones((grid.count, 1, T, T), np.float32), grid)
    moved_envelope = _band(100, 190)
    moved = tiler.grid_for(moved_envelope)
    assert moved is not grid and tiler.recomputes == 2
    frame_map = tiler.stitch(np.full((moved.count, 1, T, T), 0.5, np.float32), moved)
    assert frame_map.shape == (H, W)
    np.testing.assert_allclose(frame_map[moved_envelope], 0.5)
    assert not frame_map[~moved_envelope].any(), "nothing left of the old band"


@pytest.mark.data
def test_real_defects_lie_in_the_tiled_envelope() -> None:
    """Default mask and tiling settings: every ground-truth defect pixel is inferred."""
    images = sorted((DATA / "test").glob("[!g]*/*.png"))
    if not images:
        pytest.skip(f"real rope photographs not found under {DATA}")
    for path in images:
        image = np.asarray(cv2.imread(str(path)))[:, :, ::-1].copy()
        truth_path = DATA / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
        truth = np.asarray(cv2.imread(str(truth_path), cv2.IMREAD_GRAYSCALE)) > 0
        envelope = rope_envelope(grabcut_rope_mask(image).mask, 60)
        grid = tile_grid(envelope, 128, 16, 0.02)
        tiled = np.zeros(envelope.shape, bool)
        for window in grid.windows:
            tiled[window] = True
        missed = int(np.count_nonzero(truth & ~(tiled & envelope)))
        assert missed == 0, f"{path.parent.name}/{path.name}: {missed} px not inferred"
