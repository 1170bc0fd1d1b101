"""Texture sources for the detection model's synthetic anomalies.

What gets pasted inside a Perlin mask. A folder of texture images when the user gives
one; otherwise sources the project makes itself: the training image under strong colour
and geometric augmentation, and procedural textures (multi-octave noise, stripes, blobs,
fibre-like lines). Nothing is downloaded. Every source returns float32 H x W x 3 RGB in
[0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from rope_inspect.errors import DataError
from rope_inspect.model.perlin import perlin_noise, rotate

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class TextureSource(Protocol):
    """Gives a texture the size of `image` (the training image being augmented)."""

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def _random_crop_resized(
    texture: np.ndarray, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """A random crop of `texture` with the target aspect, resized to height x width."""
    src_h, src_w = texture.shape[:2]
    scale = min(src_h / height, src_w / width) * rng.uniform(0.4, 1.0)
    crop_h = max(1, int(height * scale))
    crop_w = max(1, int(width * scale))
    top = int(rng.integers(0, src_h - crop_h + 1))
    left = int(rng.integers(0, src_w - crop_w + 1))
    crop = texture[top : top + crop_h, left : left + crop_w]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


class FolderTextures:
    """Texture images from a user folder (DTD or photos of contaminants, ...)."""

    def __init__(self, folder: str | Path, cache_size: int = 64) -> None:
        self.folder = Path(folder)
        hint = (
            "put PNG/JPEG texture images in it, or remove the texture folder from the "
            "training config to use the built-in textures"
        )
        if not self.folder.is_dir():
            raise DataError(f"texture folder {self.folder} does not exist", hint)
        self.paths = sorted(
            p
            for p in self.folder.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.paths:
            raise DataError(f"texture folder {self.folder} holds no images", hint)
        self.cache_size = cache_size
        self._cache: dict[Path, np.ndarray] = {}

    def _load(self, path: Path) -> np.ndarray:
        if path in self._cache:
            return self._cache[path]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(
                f"texture image {path} in {self.folder} cannot be read",
                "replace or delete the file",
            )
        texture = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[path] = texture
        return texture

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        path = self.paths[int(rng.integers(len(self.paths)))]
        height, width = image.shape[:2]
        return _random_crop_resized(self._load(path), height, width, rng)


def shift_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def posterize(image: np.ndarray, levels: int) -> np.ndarray:
    return np.floor(image * levels) / max(levels - 1, 1)


def _colour_ops(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ops = [
        lambda x: shift_hue(x, float(rng.uniform(30.0, 330.0))),
        lambda x: 1.0 - x,
        lambda x: posterize(x, int(rng.integers(2, 5))),
        lambda x: (x - x.mean()) * rng.uniform(1.5, 3.0) + x.mean(),
        lambda x: x * rng.uniform(0.2, 0.6) + rng.uniform(0.0, 0.6),
        lambda x: np.where(x > rng.uniform(0.3, 0.7), 1.0 - x, x),
    ]
    for index in rng.choice(len(ops), size=3, replace=False):
        image = ops[int(index)](image)
    return image


class AugmentedImageTextures:
    """The training image itself under strong colour and geometric augmentation.

    Texture that looks like rope but sits at the wrong place, angle and colour: the
    closest built-in stand-in for cut, opened or contaminated strands.
    """

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        texture = _random_crop_resized(image.astype(np.float32), height, width, rng)
        texture = rotate(texture, float(rng.uniform(-180.0, 180.0)))
        if rng.random() < 0.5:
            texture = texture[:, ::-1]
        if rng.random() < 0.5:
            texture = texture[::-1]
        texture = _colour_ops(np.ascontiguousarray(texture), rng)
        return np.clip(texture, 0.0, 1.0).astype(np.float32)


def _palette(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32)


def _two_colour(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    low, high = _palette(rng, 2)
    return low + weight[..., None] * (high - low)


def octave_noise(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Fractal noise: Perlin octaves of halving amplitude, two random colours."""
    total = np.zeros((height, width), np.float32)
    base = int(rng.integers(1, 4))
    for octave in range(4):
        res = min(base * 2**octave, height, width)
        total += perlin_noise(height, width, res, res, rng) * 0.5**octave
    weight = (total - total.min()) / max(float(np.ptp(total)), 1e-6)
    return _two_colour(weight, rng)


def stripes(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Sine stripes at a random angle and period, two random colours."""
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(3.0, max(height, width) / 2.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2.0 * np.pi / period)
    weight = 0.5 + 0.5 * np.sin(phase)
    if rng.random() < 0.5:
        weight = (weight > 0.5).astype(np.float32)
    return _two_colour(weight.astype(np.float32), rng)


def blobs(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Soft ellipses of random colours on a random background."""
    texture = np.empty((height, width, 3), np.float32)
    texture[:] = _palette(rng, 1)[0]
    side = max(height, width)
    for colour in _palette(rng, int(rng.integers(3, 12))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (
            int(rng.integers(2, side // 3 + 3)),
            int(rng.integers(2, side // 3 + 3)),
        )
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(texture, centre, axes, angle, 0, 360, colour.tolist(), -1)
    return cv2.GaussianBlur(texture, (0, 0), float(rng.uniform(0.5, 3.0)))


def fibres(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Many thin, nearly parallel curved lines: loose or foreign fibres."""
    texture = np.empty((height, width, 3), np.float32)
    texture[:] = _palette(rng, 1)[0]
    base_angle = rng.uniform(0.0, np.pi)
    side = max(height, width)
    for colour in _palette(rng, int(rng.integers(20, 80))):
        angle = base_angle + rng.normal(0.0, 0.3)
        start = rng.uniform(0, 1, size=2) * (width, height)
        steps = np.linspace(-side, side, 12)[:, None]
        bend = np.cumsum(rng.normal(0.0, 1.5, size=(12, 2)), axis=0)
        points = start + steps * (np.cos(angle), np.sin(angle)) + bend
        cv2.polylines(
            texture,
            [points.astype(np.int32)],
            False,
            colour.tolist(),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
        )
    return texture


class ProceduralTextures:
    """Generated textures: multi-octave noise, stripes, blobs, fibre-like lines."""

    makers = (octave_noise, stripes, blobs, fibres)

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        make = self.makers[int(rng.integers(len(self.makers)))]
        return np.clip(make(height, width, rng), 0.0, 1.0).astype(np.float32)


class MixedTextures:
    """Picks one of several sources per sample, with the given weights."""

    def __init__(
        self, sources: Sequence[TextureSource], weights: Sequence[float] | None = None
    ) -> None:
        self.sources = list(sources)
        total = float(sum(weights)) if weights else float(len(self.sources))
        self.weights = [w / total for w in (weights or [1.0] * len(self.sources))]

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        index = int(rng.choice(len(self.sources), p=self.weights))
        return self.sources[index].sample(image, rng)


def texture_source(folder: str | Path | None = None) -> TextureSource:
    """The user's texture folder when given, else the built-in mix (half and half)."""
    if folder is not None:
        return FolderTextures(folder)
    return MixedTextures([AugmentedImageTextures(), ProceduralTextures()])
