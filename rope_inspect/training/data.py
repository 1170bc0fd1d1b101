"""Training and test images in the MVTec AD layout, and rope-centred training tiles.

Layout: ``train/good``, ``validation/good``, ``test/<defect>/*.png`` and
``ground_truth/<defect>/<stem>_mask.png`` (> 0 = defect). Every problem a user can cause
(a missing folder, an unreadable image, a mask of the wrong size, a defective test image
without a mask) raises `DataError` naming the file.

Training tiles are drawn centred on rope pixels of the cached GrabCut mask, so the model
spends its steps on rope, not on the foam around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rope_inspect.errors import DataError
from rope_inspect.vision.image_io import read_rgb as read_image
from rope_inspect.vision.rope_mask import MaskCache, RopeAxis, rope_envelope
from rope_inspect.vision.tile_shape import TileShape, describe, tile_hw

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUT_HINT = (
    "expected the MVTec AD layout: train/good, validation/good, test/<defect>, "
    "ground_truth/<defect>/<name>_mask.png"
)


@dataclass(frozen=True)
class TestSample:
    """One test image, its defect type ('good' for none) and its mask file."""

    image_path: Path
    defect: str
    mask_path: Path | None


def read_mask(path: Path, shape: tuple[int, int], image_path: Path) -> np.ndarray:
    """A bool defect mask that must match the image size; DataError otherwise."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(f"cannot read mask {path}", "check that the file is a PNG")
    if mask.shape != shape:
        raise DataError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{image_path} is {shape[1]}x{shape[0]}",
            "masks must have the size of their image",
        )
    return np.asarray(mask > 0)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}", LAYOUT_HINT)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"folder {folder} holds no images", LAYOUT_HINT)
    return files


class MvtecLayout:
    """The image files of one dataset folder in the MVTec AD layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"dataset folder {self.root} does not exist",
                "set data.root in the recipe or pass --data",
            )

    def train_images(self) -> list[Path]:
        return _image_files(self.root / "train" / "good")

    def validation_images(self) -> list[Path]:
        return _image_files(self.root / "validation" / "good")

    def test_samples(self) -> list[TestSample]:
        """Every test image with its defect type and mask path, good ones first."""
        test_root = self.root / "test"
        if not test_root.is_dir():
            raise DataError(f"missing folder {test_root}", LAYOUT_HINT)
        defects = sorted(p.name for p in test_root.iterdir() if p.is_dir())
        defects.sort(key=lambda name: name != "good")
        samples: list[TestSample] = []
        for defect in defects:
            for image_path in _image_files(test_root / defect):
                samples.append(self._sample(image_path, defect))
        return samples

    def _sample(self, image_path: Path, defect: str) -> TestSample:
        if defect == "good":
            return TestSample(image_path, defect, None)
        mask_path = self.root / "ground_truth" / defect / f"{image_path.stem}_mask.png"
        if not mask_path.is_file():
            raise DataError(
                f"test image {image_path} has no mask: {mask_path} is missing",
                "add the mask or move the image to test/good",
            )
        return TestSample(image_path, defect, mask_path)


@dataclass
class RopeImage:
    """A training image with its rope mask and synthesis region."""

    image: np.ndarray  # H x W x 3 uint8
    rope: np.ndarray  # bool H x W, GrabCut foreground
    region: np.ndarray  # bool H x W, where synthetic anomalies may go
    centres: np.ndarray  # K x 2 (row, col) rope pixels tiles are centred on


def synthesis_region(
    rope: np.ndarray, mode: str, margin_px: int, axis: RopeAxis
) -> np.ndarray:
    """Where anomalies may be synthesised: whole tile, strict rope or rope envelope."""
    if mode == "none":
        return np.ones(rope.shape, bool)
    if mode == "strict":
        return rope.copy()
    return rope_envelope(rope, margin_px, axis)


def load_rope_images(
    paths: list[Path],
    cache: MaskCache,
    axis: RopeAxis,
    synthesis_mode: str,
    margin_px: int,
    mask_params: tuple[int, int] = (4, 3),
) -> list[RopeImage]:
    """Read images, get their (cached) rope masks and synthesis regions."""
    images = []
    for path in paths:
        image = read_image(path)
        rope = cache.get(image, axis, *mask_params).mask
        centres = np.argwhere(rope)
        if len(centres) == 0:
            centres = np.argwhere(np.ones(rope.shape, bool))
        region = synthesis_region(rope, synthesis_mode, margin_px, axis)
        images.append(
            RopeImage(image, rope, region, centres[:: max(1, len(centres) // 4096)])
        )
    return images


def draw_tiles(
    images: list[RopeImage],
    count: int,
    tile: int | TileShape,
    flips: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` tiles (N x h x w x 3 uint8) centred on rope pixels, and their regions;
    `tile` is a square side or (height, width)."""
    tile_h, tile_w = tile_hw(tile)
    tiles = np.empty((count, tile_h, tile_w, 3), np.uint8)
    regions = np.empty((count, tile_h, tile_w), bool)
    for i in range(count):
        item = images[int(rng.integers(len(images)))]
        row, col = item.centres[int(rng.integers(len(item.centres)))]
        height, width = item.rope.shape
        if height < tile_h or width < tile_w:
            raise DataError(
                f"training images are {width}x{height}, smaller than "
                f"the {describe((tile_h, tile_w))} tile",
                "lower data.tile / data.tile_across in the recipe",
            )
        top = int(np.clip(row - tile_h // 2, 0, height - tile_h))
        left = int(np.clip(col - tile_w // 2, 0, width - tile_w))
        crop = item.image[top : top + tile_h, left : left + tile_w]
        region = item.region[top : top + tile_h, left : left + tile_w]
        if flips and rng.random() < 0.5:
            crop, region = crop[:, ::-1], region[:, ::-1]
        if flips and rng.random() < 0.5:
            crop, region = crop[::-1], region[::-1]
        tiles[i], regions[i] = crop, region
    return tiles, regions
