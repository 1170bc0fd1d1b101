"""Perlin masks, texture sources and the anomaly synthesizer of the detection model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rope_inspect.errors import DataError
from rope_inspect.model.perlin import perlin_mask, perlin_noise
from rope_inspect.model.synthesis import AnomalySynthesizer
from rope_inspect.model.textures import (
    AugmentedImageTextures,
    FolderTextures,
    ProceduralTextures,
    texture_source,
)


def rope_like(height: int = 100, width: int = 136) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform(0.2, 0.6, size=(height, width, 3)).astype(np.float32)


@pytest.mark.parametrize(("height", "width"), [(100, 136), (37, 250), (224, 900)])
def test_perlin_works_on_sizes_that_are_not_powers_of_two(
    height: int, width: int
) -> None:
    rng = np.random.default_rng(0)
    noise = perlin_noise(height, width, 4, 8, rng)
    assert noise.shape == (height, width)
    assert np.isfinite(noise).all()
    assert noise.std() > 0.05
    masks = [perlin_mask(height, width, rng) for _ in range(20)]
    assert all(m.shape == (height, width) and m.dtype == bool for m in masks)
    assert 0.0 < np.mean([m.mean() for m in masks]) < 0.5


def test_perlin_noise_is_continuous_across_cells() -> None:
    noise = perlin_noise(64, 96, 4, 6, np.random.default_rng(1))
    # neighbouring pixels differ little compared with the value range
    assert np.abs(np.diff(noise, axis=0)).max() < 0.25 * np.ptp(noise)
    assert np.abs(np.diff(noise, axis=1)).max() < 0.25 * np.ptp(noise)


def test_perlin_mask_is_reproducible_with_the_same_seed() -> None:
    first = perlin_mask(50, 70, np.random.default_rng(3))
    second = perlin_mask(50, 70, np.random.default_rng(3))
    assert np.array_equal(first, second)


def test_synthesis_never_puts_an_anomaly_outside_the_allowed_region() -> None:
    image = rope_like()
    allowed = np.zeros(image.shape[:2], bool)
    allowed[40:60, :] = True  # a horizontal rope band
    synth = AnomalySynthesizer(
        texture_source(), np.random.default_rng(0), normal_probability=0.0
    )
    anomalous = 0
    for _ in range(60):
        augmented, mask, has_anomaly = synth(image, allowed)
        assert not mask[~allowed].any()
        changed = np.abs(augmented - image).max(axis=2) > 0
        assert not changed[~allowed].any()
        assert has_anomaly == float(mask.any())
        anomalous += int(has_anomaly)
    assert anomalous > 40


def test_empty_intersection_gives_a_normal_sample() -> None:
    image = rope_like()
    synth = AnomalySynthesizer(
        texture_source(), np.random.default_rng(0), normal_probability=0.0
    )
    augmented, mask, has_anomaly = synth(image, np.zeros(image.shape[:2], bool))
    assert has_anomaly == 0.0
    assert not mask.any()
    assert np.array_equal(augmented, image)


def test_about_half_the_samples_stay_normal() -> None:
    image = rope_like()
    synth = AnomalySynthesizer(ProceduralTextures(), np.random.default_rng(5))
    labels = [synth(image).has_anomaly for _ in range(200)]
    assert 0.35 < 1.0 - np.mean(labels) < 0.65


def test_anomaly_blends_texture_with_bounded_opacity() -> None:
    image = np.full((64, 80, 3), 0.5, np.float32)

    class White:
        def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return np.ones_like(image)

    synth = AnomalySynthesizer(White(), np.random.default_rng(2), normal_probability=0)
    for _ in range(20):
        augmented, mask, has_anomaly = synth(image)
        if not has_anomaly:
            continue
        inside = augmented[mask > 0]
        opacity = (inside - 0.5) / 0.5
        assert np.allclose(opacity, opacity[0, 0], atol=1e-5)
        assert 0.1 - 1e-5 <= opacity[0, 0] <= 1.0 + 1e-5
        assert np.array_equal(augmented[mask == 0], image[mask == 0])


@pytest.mark.parametrize("source", [AugmentedImageTextures(), ProceduralTextures()])
def test_built_in_textures_are_rgb_in_unit_range(source: object) -> None:
    rng = np.random.default_rng(0)
    image = rope_like(90, 130)
    for _ in range(12):
        texture = source.sample(image, rng)  # type: ignore[attr-defined]
        assert texture.shape == (90, 130, 3)
        assert texture.dtype == np.float32
        assert texture.min() >= 0.0 and texture.max() <= 1.0
        assert texture.std() > 0.0


def test_folder_textures_read_images(tmp_path: Path) -> None:
    pattern = (np.indices((40, 60)).sum(0) % 2 * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "check.png"), np.dstack([pattern] * 3))
    texture = FolderTextures(tmp_path).sample(rope_like(), np.random.default_rng(0))
    assert texture.shape == (100, 136, 3)


def test_folder_textures_refuse_an_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)):
        FolderTextures(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        FolderTextures(tmp_path / "nope")


def test_folder_textures_name_an_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    source = FolderTextures(tmp_path)
    with pytest.raises(DataError, match=r"broken\.png"):
        source.sample(rope_like(), np.random.default_rng(0))
