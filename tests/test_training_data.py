"""The MVTec-layout reader: errors that name the file, tiles drawn over the rope."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.errors import DataError
from rope_inspect.training.data import (
    MvtecLayout,
    RopeImage,
    draw_tiles,
    read_image,
    read_mask,
    synthesis_region,
)


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def _layout(root: Path) -> Path:
    image = np.full((32, 48, 3), 50, np.uint8)
    _write(root / "train" / "good" / "000.png", image)
    _write(root / "validation" / "good" / "000.png", image)
    _write(root / "test" / "good" / "000.png", image)
    _write(root / "test" / "cut" / "001.png", image)
    _write(root / "ground_truth" / "cut" / "001_mask.png", np.zeros((32, 48), np.uint8))
    return root


def test_reads_a_complete_layout(tmp_path: Path) -> None:
    layout = MvtecLayout(_layout(tmp_path / "ds"))
    assert [p.name for p in layout.train_images()] == ["000.png"]
    samples = layout.test_samples()
    assert [(s.defect, s.image_path.name) for s in samples] == [
        ("good", "000.png"),
        ("cut", "001.png"),
    ]
    assert samples[0].mask_path is None
    assert samples[1].mask_path is not None
    assert samples[1].mask_path.name == "001_mask.png"


def test_missing_dataset_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        MvtecLayout(tmp_path / "nowhere")
    root = _layout(tmp_path / "ds")
    for child in (root / "validation" / "good").iterdir():
        child.unlink()
    (root / "validation" / "good").rmdir()
    with pytest.raises(DataError, match=r"missing folder .*validation/good"):
        MvtecLayout(root).validation_images()


def test_test_image_without_mask_is_named(tmp_path: Path) -> None:
    root = _layout(tmp_path / "ds")
    (root / "ground_truth" / "cut" / "001_mask.png").unlink()
    with pytest.raises(DataError, match=r"test/cut/001.png has no mask"):
        MvtecLayout(root).test_samples()


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        read_image(broken)


def test_mask_of_wrong_size_is_named(tmp_path: Path) -> None:
    mask = _write(tmp_path / "m_mask.png", np.zeros((10, 20), np.uint8))
    with pytest.raises(DataError, match=r"m_mask.png is 20x10 but its image .*a.png"):
        read_mask(mask, (32, 48), tmp_path / "a.png")
    assert not read_mask(mask, (10, 20), tmp_path / "a.png").any()


def test_tiles_are_centred_on_the_rope() -> None:
    image = np.zeros((100, 300, 3), np.uint8)
    image[40:60] = 200  # the rope
    rope = np.zeros((100, 300), bool)
    rope[40:60] = True
    region = synthesis_region(rope, "strict", 0, "horizontal")
    item = RopeImage(image, rope, region, np.argwhere(rope))
    tiles, regions = draw_tiles([item], 20, 32, True, np.random.default_rng(0))
    assert tiles.shape == (20, 32, 32, 3) and regions.shape == (20, 32, 32)
    # every tile holds rope, because its centre is a rope pixel
    assert all((t == 200).any() for t in tiles)
    assert np.array_equal(regions, tiles[..., 0] == 200)


def test_synthesis_regions() -> None:
    rope = np.zeros((50, 20), bool)
    rope[20:30] = True
    assert synthesis_region(rope, "none", 5, "horizontal").all()
    assert np.array_equal(synthesis_region(rope, "strict", 5, "horizontal"), rope)
    envelope = synthesis_region(rope, "envelope", 5, "horizontal")
    assert envelope[15:35].all() and not envelope[:14].any()
