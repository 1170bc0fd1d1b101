"""Synthetic anomalies for training the detection model on defect-free rope only.

DRAEM's recipe: a Perlin-noise shape filled with a texture, blended into the image with
an opacity drawn from [0.1, 1]; about half the samples stay normal. With
`mask_constrained_synthesis` the shape is intersected with an allowed region (the rope
mask or its envelope), so no anomaly pixel ever lies outside it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rope_inspect.errors import DataError
from rope_inspect.model.perlin import perlin_mask
from rope_inspect.model.textures import TextureSource


class SyntheticSample(NamedTuple):
    """One training sample: image (float32 H x W x 3), its mask and its label."""

    augmented: np.ndarray
    anomaly_mask: np.ndarray
    has_anomaly: float


class AnomalySynthesizer:
    """Turns a defect-free image into a training sample, anomalous or normal.

    `attempts`: when a drawn shape misses the allowed region entirely, a new shape is
    drawn up to this many times before the sample is returned as normal, so a small
    rope region does not silently turn most samples normal.
    """

    def __init__(
        self,
        texture_source: TextureSource,
        rng: np.random.Generator,
        normal_probability: float = 0.5,
        *,
        opacity: tuple[float, float] = (0.1, 1.0),
        max_scale_exponent: int = 5,
        threshold: float = 0.5,
        attempts: int = 4,
    ) -> None:
        if not 0.0 <= normal_probability <= 1.0:
            raise ValueError(f"normal_probability {normal_probability} not in [0, 1]")
        if not 0.0 < opacity[0] <= opacity[1] <= 1.0:
            raise ValueError(f"opacity range {opacity} not within (0, 1]")
        self.texture_source = texture_source
        self.rng = rng
        self.normal_probability = normal_probability
        self.opacity = opacity
        self.max_scale_exponent = max_scale_exponent
        self.threshold = threshold
        self.attempts = max(1, attempts)

    def _shape(self, height: int, width: int, allowed: np.ndarray | None) -> np.ndarray:
        """A non-empty anomaly shape inside `allowed`, or an empty one after retries."""
        shape = np.zeros((height, width), bool)
        for _ in range(self.attempts):
            shape = perlin_mask(
                height,
                width,
                self.rng,
                max_scale_exponent=self.max_scale_exponent,
                threshold=self.threshold,
            )
            if allowed is not None:
                shape &= allowed
            if shape.any():
                return shape
        return shape

    def __call__(
        self, image: np.ndarray, allowed_region: np.ndarray | None = None
    ) -> SyntheticSample:
        """image float H x W x 3 in [0, 1]; allowed_region bool H x W or None."""
        height, width = image.shape[:2]
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"synthesis needs an H x W x 3 image, got {image.shape}")
        if allowed_region is not None and allowed_region.shape != (height, width):
            raise DataError(
                f"allowed region {allowed_region.shape} does not match the image "
                f"{(height, width)}",
                "compute the rope mask on the same crop as the image",
            )
        image = image.astype(np.float32, copy=False)
        normal = SyntheticSample(image, np.zeros((height, width), np.float32), 0.0)
        if self.rng.random() < self.normal_probability:
            return normal

        allowed = None if allowed_region is None else allowed_region.astype(bool)
        shape = self._shape(height, width, allowed)
        if not shape.any():
            return normal

        texture = self.texture_source.sample(image, self.rng)
        opacity = np.float32(self.rng.uniform(*self.opacity))
        alpha = (opacity * shape.astype(np.float32))[..., None]
        augmented = (1.0 - alpha) * image + alpha * texture
        return SyntheticSample(
            augmented.astype(np.float32), shape.astype(np.float32), 1.0
        )
