"""`eval` tiles: square by default, the daemon's non-square layout on request."""

from __future__ import annotations

import numpy as np
import torch

from rope_inspect.training.config import config_from_dict
from rope_inspect.training.evaluate import eval_tile, infer_image


class ShapeRecorder(torch.nn.Module):
    """A stand-in model: the map is the red channel; records every batch's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.shapes.append(tuple(batch.shape))
        maps = batch[:, :1]
        return maps, maps.amax(dim=(1, 2, 3))


def _recipe(**eval_section: int) -> dict:
    return {
        "name": "t",
        "data": {"root": "/nonexistent", "tile": 128, "rope_axis": "horizontal"},
        "eval": eval_section,
    }


def test_eval_tile_follows_the_rope_axis_and_the_overrides() -> None:
    assert eval_tile(config_from_dict(_recipe())) == (128, 128)
    shipped = config_from_dict(_recipe(tile_along=160, tile_across=224))
    assert eval_tile(shipped) == (224, 160)
    vertical = _recipe(tile_along=160, tile_across=224)
    vertical["data"]["rope_axis"] = "vertical"
    assert eval_tile(config_from_dict(vertical)) == (160, 224)
    assert eval_tile(config_from_dict(_recipe(tile_along=96))) == (96, 96)


def test_infer_image_cuts_tall_tiles_and_stitches_the_whole_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 100, 3), dtype=np.uint8)
    model = ShapeRecorder()
    out = infer_image(model, image, (64, 32), overlap=8, batch_size=2)
    assert {shape[2:] for shape in model.shapes} == {(64, 32)}
    assert out.shape == (64, 100)
    # each pixel's map is its own red value, whichever (overlapping) tile it came from
    np.testing.assert_allclose(out, image[..., 0] / 255.0, rtol=1e-6)
