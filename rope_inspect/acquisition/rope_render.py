"""Procedural image of a three-strand twisted fibre rope, lit on a dark background.

The rope runs horizontally. Every pixel is a pure function of its absolute rope
coordinate (x in pixels along the rope, y in the frame), so any stretch of rope can
be rendered on its own and two renderings of the same stretch are identical: the
synthetic line renders long strips and slides a window along them, and defects are
painted on top of the same pixels wherever they are cut.

Model: a cylinder of radius R(x) around a slowly wandering centre line. The visible
angle theta = asin(v) of a pixel at height v in [-1, 1] gives the helical strand
coordinate s = 3 (x / lay + theta / 2pi); its fraction is the position across a strand
(round strands, dark grooves between them) and picks a fibre whose brightness comes
from a seeded table. Cylinder shading, scalloped edges, fibre stripes and sparse
glints come on top. Thickness defects enter as a factor on R(x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Profile = Callable[[np.ndarray], np.ndarray]
"""Radius factor along the rope: absolute x (px, float) -> factor (1 = nominal)."""

_TILE = 512
_FIBRE_TABLE = 4096


@dataclass(frozen=True)
class RopeLook:
    """How the rope and its background look; everything is seeded."""

    height: int = 224
    px_per_mm: float = 6.0
    diameter_mm: float = 10.0
    seed: int = 0
    lay_per_diameter: float = 1.65
    fibres_per_strand: int = 14
    colour: tuple[float, float, float] = (205.0, 195.0, 170.0)
    background: tuple[float, float, float] = (22.0, 24.0, 34.0)
    wander_px: float = 4.0

    @property
    def radius_px(self) -> float:
        return self.diameter_mm * self.px_per_mm / 2

    @property
    def lay_px(self) -> float:
        return self.lay_per_diameter * self.diameter_mm * self.px_per_mm


@dataclass
class StripGeometry:
    """Where the rope lies in a rendered strip (per column), for defect painters."""

    x0: int
    centre: np.ndarray
    radius: np.ndarray
    rows: slice


class RopeRenderer:
    """Renders stretches of rope; see the module docstring."""

    def __init__(self, look: RopeLook) -> None:
        self.look = look
        rng = np.random.default_rng([look.seed, 7])
        self._fibre = rng.uniform(0.55, 1.2, _FIBRE_TABLE).astype(np.float32)
        self._glint = rng.random((look.height, _TILE), dtype=np.float32)
        noise = rng.normal(0.0, 3.0, (look.height, _TILE, 3)).astype(np.float32)
        bg = np.asarray(look.background, np.float32)
        self._background = np.clip(bg + noise, 0, 255).astype(np.uint8)
        self._wander = rng.uniform(0, 2 * np.pi, 3)
        self._colour = np.asarray(look.colour, np.float32)

    def centre(self, xs: np.ndarray) -> np.ndarray:
        """Rope centre row for absolute columns xs (slow wander of a few pixels)."""
        look = self.look
        px_per_m = look.px_per_mm * 1000.0
        phase = self._wander
        w = (
            0.6 * np.sin(2 * np.pi * xs / (0.9 * px_per_m) + phase[0])
            + 0.3 * np.sin(2 * np.pi * xs / (0.37 * px_per_m) + phase[1])
            + 0.1 * np.sin(2 * np.pi * xs / (0.11 * px_per_m) + phase[2])
        )
        return (look.height / 2 + look.wander_px * w).astype(np.float32)

    def radius(self, xs: np.ndarray, profile: Profile | None = None) -> np.ndarray:
        r = np.full(xs.shape, self.look.radius_px, np.float32)
        if profile is not None:
            r *= profile(xs).astype(np.float32)
        return r

    def strand_coordinate(
        self, xs: np.ndarray | float, v: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Helical strand coordinate s = 3 (x / lay + theta / 2pi), split in two.

        Returns (strand, across): the integer strand number (unique along the rope)
        and the float32 position across that strand in [0, 1). The split keeps full
        precision kilometres down the rope, where float32 columns would not.
        """
        turns = np.asarray(xs, np.float64) / self.look.lay_px
        whole = np.floor(turns)
        theta = np.arcsin(np.clip(np.asarray(v, np.float32), -1.0, 1.0))
        t = 3.0 * ((turns - whole).astype(np.float32) + theta / np.float32(2 * np.pi))
        t_whole = np.floor(t)
        return 3 * whole.astype(np.int64) + t_whole.astype(np.int64), t - t_whole

    def render(
        self, x0: int, width: int, profile: Profile | None = None
    ) -> tuple[np.ndarray, StripGeometry]:
        """RGB image (height x width) of the rope from absolute column x0."""
        look = self.look
        xs = np.arange(x0, x0 + width, dtype=np.float64)
        cols = (np.arange(x0, x0 + width) % _TILE).astype(np.intp)
        image = self._background[:, cols]
        centre = self.centre(xs)
        radius = self.radius(xs, profile)
        top = max(int(np.floor((centre - radius * 1.05).min())) - 2, 0)
        bottom = min(int(np.ceil((centre + radius * 1.05).max())) + 3, look.height)
        rows = slice(top, bottom)
        if bottom > top:
            band = self._shade(xs, cols, rows, centre, radius)
            alpha = band[..., 3:4]
            bg = image[rows].astype(np.float32)
            image[rows] = (bg * (1 - alpha) + band[..., :3] * alpha).astype(np.uint8)
        return image, StripGeometry(x0=x0, centre=centre, radius=radius, rows=rows)

    def _shade(
        self,
        xs: np.ndarray,
        cols: np.ndarray,
        rows: slice,
        centre: np.ndarray,
        radius: np.ndarray,
    ) -> np.ndarray:
        """RGBA float band of the rope rows: colour and coverage alpha."""
        ys = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
        below = ys >= centre[None, :]
        edge = self._edge_factor(xs, below)
        r_eff = radius[None, :] * edge
        v = (ys - centre[None, :]) / r_eff
        alpha = np.clip((1.0 - np.abs(v)) * r_eff + 0.5, 0.0, 1.0)
        strand, across = self.strand_coordinate(xs[None, :], v)
        tube = np.sqrt(np.clip(1.0 - (2.0 * across - 1.0) ** 2, 0.0, 1.0))
        cylinder = np.sqrt(np.clip(1.0 - v * v, 0.0, 1.0))
        fibre = strand * 37 + np.floor(across * self.look.fibres_per_strand).astype(
            np.int64
        )
        fibre_gain = self._fibre[fibre % _FIBRE_TABLE]
        stripe = 1.0 + 0.1 * np.sin(across * self.look.fibres_per_strand * 2 * np.pi)
        light = (0.18 + 0.82 * cylinder**0.8) * (0.22 + 0.78 * tube**0.7)
        shade = light * fibre_gain * stripe
        glint = self._glint[rows][:, cols] > 0.985
        colour = shade[..., None] * self._colour + glint[..., None] * (
            70.0 * tube[..., None]
        )
        out = np.empty((*v.shape, 4), np.float32)
        out[..., :3] = np.clip(colour, 0, 255)
        out[..., 3] = alpha
        return out

    def _edge_factor(self, xs: np.ndarray, below: np.ndarray) -> np.ndarray:
        """Scalloped silhouette: the radius dips where grooves meet the edge."""
        out = []
        for side in (-1.0, 1.0):
            _, across = self.strand_coordinate(xs, np.full(xs.shape, side, np.float32))
            tube = np.sqrt(np.clip(1.0 - (2.0 * across - 1.0) ** 2, 0.0, 1.0))
            out.append(0.9 + 0.1 * tube)
        return np.where(below, out[1][None, :], out[0][None, :])
