"""Perlin-noise masks: where the training anomalies of the detection model go.

DRAEM draws the shape of each synthetic anomaly by thresholding rotated Perlin noise
whose lattice scale is drawn per axis from 2**0 .. 2**5. The noise here is evaluated
directly at each pixel's lattice coordinate, so any image size works, not only sizes
divisible by the lattice resolution.
"""

from __future__ import annotations

import cv2
import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    height: int, width: int, res_y: int, res_x: int, rng: np.random.Generator
) -> np.ndarray:
    """Gradient noise, float32 H x W, about in [-1, 1], with `res_y` x `res_x` cells."""
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(res_y + 1, res_x + 1))
    grad_y, grad_x = np.sin(angles), np.cos(angles)

    pos_y = (np.arange(height) + 0.5) * (res_y / height)
    pos_x = (np.arange(width) + 0.5) * (res_x / width)
    cell_y = np.minimum(pos_y.astype(np.int64), res_y - 1)[:, None]
    cell_x = np.minimum(pos_x.astype(np.int64), res_x - 1)[None, :]
    frac_y = (pos_y[:, None] - cell_y).astype(np.float64)
    frac_x = (pos_x[None, :] - cell_x).astype(np.float64)

    def corner(dy: int, dx: int) -> np.ndarray:
        gy = grad_y[cell_y + dy, cell_x + dx]
        gx = grad_x[cell_y + dy, cell_x + dx]
        return gy * (frac_y - dy) + gx * (frac_x - dx)

    fade_y, fade_x = _fade(frac_y), _fade(frac_x)
    top = corner(0, 0) + fade_x * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + fade_x * (corner(1, 1) - corner(1, 0))
    noise = np.sqrt(2.0) * (top + fade_y * (bottom - top))
    return noise.astype(np.float32)


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre, keeping the size; borders are mirrored, not zeroed."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), degrees, 1.0)
    return cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def perlin_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    max_scale_exponent: int = 5,
    threshold: float = 0.5,
    max_rotation: float = 90.0,
) -> np.ndarray:
    """A random anomaly shape: bool H x W where rotated Perlin noise > `threshold`.

    The lattice resolution per axis is 2**k with k drawn from 0 .. max_scale_exponent,
    capped at the image side so every cell is at least one pixel.
    """
    exp_y, exp_x = rng.integers(0, max_scale_exponent + 1, size=2)
    res_y = int(min(2**exp_y, height))
    res_x = int(min(2**exp_x, width))
    noise = perlin_noise(height, width, res_y, res_x, rng)
    noise = rotate(noise, float(rng.uniform(-max_rotation, max_rotation)))
    return noise > threshold
