"""The CUDA tiling's host-side geometry (no GPU needed): launch shapes and checks."""

from __future__ import annotations

import numpy as np
import pytest

from rope_inspect.engine.cuda_tiling import BLOCK, check_grid, tile_launch
from rope_inspect.errors import EngineError
from rope_inspect.vision.tiling import tile_grid


def test_launch_covers_every_pixel_of_a_tall_tile() -> None:
    launch = tile_launch((224, 160), 5)
    columns, rows, count = launch["grid"]
    assert launch["block"] == (BLOCK, BLOCK, 1) and count == 5
    assert columns * BLOCK >= 160 > (columns - 1) * BLOCK  # x runs along the width
    assert rows * BLOCK >= 224 > (rows - 1) * BLOCK  # y along the height


def test_grid_and_engine_must_agree_on_the_tile_shape() -> None:
    envelope = np.zeros((224, 640), bool)
    envelope[20:200] = True
    grid = tile_grid(envelope, (224, 160), 0, 0.02)
    image = np.zeros((224, 640, 3), np.uint8)
    check_grid(grid, image, (224, 160))
    with pytest.raises(EngineError, match=r"224 x 160 px, engine built for 160 x 224"):
        check_grid(grid, image, (160, 224))
    with pytest.raises(EngineError, match="does not match the tile grid"):
        check_grid(grid, np.zeros((200, 640, 3), np.uint8), (224, 160))
