"""Defects of the synthetic rope line: where they are, how they look, and their masks.

Defects are a seeded Poisson process along the rope (`defects_in_metre`), each with its
own seed, so the same defect is painted identically in every strip that shows it. The
painters draw on a rendered stretch of rope (`rope_render.py`) and return the exact
pixel mask of what they changed or added: this is the line's ground truth.

Kinds: cut_strand (a strand severed, frayed ends), fuzz (broken filaments sticking out),
contamination (a foreign blob), open_strand (a strand lifted off the rope), thickness
(a bulge or neck: a change of the rope radius, applied in the geometry).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rope_inspect.acquisition.rope_render import Profile, RopeRenderer, StripGeometry

DEFECT_KINDS = ("cut_strand", "fuzz", "contamination", "open_strand", "thickness")

# half extent along the rope (mm) that a painter may touch around the defect centre
EXTENT_MM = {
    "cut_strand": 8.0,
    "fuzz": 14.0,
    "contamination": 8.0,
    "open_strand": 13.0,
    "thickness": 16.0,
}

_MIN_GAP_M = 0.06
_EDGE_M = 0.04


@dataclass(frozen=True)
class DefectSpec:
    """One defect: identity, kind, centre column along the rope (absolute px)."""

    defect_id: int
    kind: str
    x_px: float
    seed: int

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, 3, self.defect_id, salt])

    def extent(self, px_per_mm: float) -> tuple[int, int]:
        half = EXTENT_MM[self.kind] * px_per_mm
        return int(np.floor(self.x_px - half)), int(np.ceil(self.x_px + half)) + 1


@dataclass(frozen=True)
class DefectMask:
    """A painted defect: its mask in absolute rope coordinates (x0 column, y0 row)."""

    spec: DefectSpec
    x0: int
    y0: int
    mask: np.ndarray

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]


def defects_in_metre(
    metre: int, rate_per_m: float, seed: int, px_per_m: float, kinds: tuple[str, ...]
) -> list[DefectSpec]:
    """The defects whose centres lie in rope metre [metre, metre + 1)."""
    if rate_per_m <= 0 or metre < 0:
        return []
    rng = np.random.default_rng([seed, 1, metre])
    count = int(rng.poisson(rate_per_m))
    where = np.sort(rng.uniform(_EDGE_M, 1 - _EDGE_M, count))
    chosen = rng.integers(0, len(kinds), count)
    specs: list[DefectSpec] = []
    last = -1.0
    for i, (at, kind) in enumerate(zip(where, chosen, strict=True)):
        at = max(float(at), last + _MIN_GAP_M)
        if at > 1 - _EDGE_M:
            break
        last = at
        specs.append(
            DefectSpec(
                metre * 1000 + i, kinds[int(kind)], (metre + at) * px_per_m, seed
            )
        )
    return specs


def thickness_profile(specs: list[DefectSpec], px_per_mm: float) -> Profile | None:
    """Radius factor of the thickness defects among `specs` (None if there are none)."""
    params = [_thickness_params(s, px_per_mm) for s in specs if s.kind == "thickness"]
    if not params:
        return None

    def profile(xs: np.ndarray) -> np.ndarray:
        factor = np.ones(xs.shape, np.float32)
        for centre, half, amp in params:
            t = np.clip((xs - centre) / half, -1.0, 1.0)
            factor *= 1.0 + amp * np.cos(t * np.pi / 2) ** 2
        return factor

    return profile


def _thickness_params(spec: DefectSpec, px_per_mm: float) -> tuple[float, float, float]:
    rng = spec.rng()
    amp = float(rng.uniform(0.2, 0.38)) * (1 if rng.random() < 0.5 else -1)
    half = float(rng.uniform(7.0, 14.0)) * px_per_mm
    return spec.x_px, half, amp


def paint_defects(
    image: np.ndarray,
    geometry: StripGeometry,
    renderer: RopeRenderer,
    specs: list[DefectSpec],
    profile: Profile | None,
) -> list[DefectMask]:
    """Paint every defect touching the strip; returns their masks (absolute coords)."""
    px_per_mm = renderer.look.px_per_mm
    strip0, strip1 = geometry.x0, geometry.x0 + image.shape[1]
    masks = []
    for spec in sorted(specs, key=lambda s: s.defect_id):
        e0, e1 = spec.extent(px_per_mm)
        if e1 <= strip0 or e0 >= strip1:
            continue
        if strip0 <= e0 and e1 <= strip1:
            window = image[:, e0 - strip0 : e1 - strip0]
            local = _sub_geometry(geometry, e0, e1)
            mask = PAINTERS[spec.kind](window, local, renderer, spec)
        else:
            patch, local = renderer.render(e0, e1 - e0, profile)
            mask = PAINTERS[spec.kind](patch, local, renderer, spec)
            a, b = max(e0, strip0), min(e1, strip1)
            image[:, a - strip0 : b - strip0] = patch[:, a - e0 : b - e0]
        found = _tight(spec, mask, e0)
        if found is not None:
            masks.append(found)
    return masks


def _sub_geometry(geometry: StripGeometry, x0: int, x1: int) -> StripGeometry:
    a, b = x0 - geometry.x0, x1 - geometry.x0
    return StripGeometry(x0, geometry.centre[a:b], geometry.radius[a:b], geometry.rows)


def _tight(spec: DefectSpec, mask: np.ndarray, x0: int) -> DefectMask | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    return DefectMask(spec, x0 + int(cols[0]), int(rows[0]), crop)


def _grid(window: np.ndarray, geo: StripGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Absolute column and row coordinates of every pixel of a window."""
    h, w = window.shape[:2]
    xs = np.arange(geo.x0, geo.x0 + w, dtype=np.float64)[None, :].repeat(h, 0)
    ys = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    return xs, ys


def _blend(window: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    a = alpha[..., None].astype(np.float32)
    mixed = window.astype(np.float32) * (1 - a) + colour.astype(np.float32) * a
    window[...] = np.clip(mixed, 0, 255).astype(np.uint8)


def _paint_cut(
    window: np.ndarray, geo: StripGeometry, renderer: RopeRenderer, spec: DefectSpec
) -> np.ndarray:
    rng = spec.rng()
    xs, ys = _grid(window, geo)
    v = (ys - geo.centre[None, :]) / geo.radius[None, :]
    strand, _ = renderer.strand_coordinate(xs, v)
    v_c = float(rng.uniform(-0.45, 0.45))
    target, _ = renderer.strand_coordinate(spec.x_px, v_c)
    dv = float(rng.uniform(0.2, 0.4))
    region = (strand == target) & (np.abs(v - v_c) < dv) & (np.abs(v) < 0.97)
    core = np.asarray(renderer.look.colour, np.float32) * float(rng.uniform(0.12, 0.3))
    shade = rng.uniform(0.7, 1.2, region.shape).astype(np.float32)[..., None]
    window[region] = np.clip(core * shade[region], 0, 255).astype(np.uint8)
    ends = np.zeros(window.shape[:2], np.uint8)
    rows, cols = np.nonzero(region & (np.abs(v - v_c) > 0.6 * dv))
    if rows.size:
        px = renderer.look.px_per_mm
        for i in rng.integers(0, rows.size, int(rng.integers(8, 16))):
            y, x = int(rows[i]), int(cols[i])
            toward = 1 if v[y, x] < v_c else -1
            dx = rng.normal(0, 0.4) * px
            dy = toward * rng.uniform(0.4, 1.2) * px
            cv2.line(ends, (x, y), (int(x + dx), int(y + dy)), 255, 1, cv2.LINE_AA)
    _blend(window, ends / 255.0, np.asarray(renderer.look.colour) * 0.95)
    mask = region | (ends > 60)
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _paint_fuzz(
    window: np.ndarray, geo: StripGeometry, renderer: RopeRenderer, spec: DefectSpec
) -> np.ndarray:
    rng = spec.rng()
    px = renderer.look.px_per_mm
    hairs = np.zeros(window.shape[:2], np.uint8)
    sides = [-1, 1] if rng.random() < 0.3 else [int(rng.choice([-1, 1]))]
    spread = float(rng.uniform(2.0, 6.0)) * px
    for _ in range(int(rng.integers(15, 40))):
        side = int(rng.choice(sides))
        x = spec.x_px - geo.x0 + rng.uniform(-spread, spread)
        col = int(np.clip(x, 0, len(geo.centre) - 1))
        y = geo.centre[col] + side * geo.radius[col] * rng.uniform(0.75, 0.98)
        heading = side * np.pi / 2 + rng.normal(0, 0.6)
        points = [(x, y)]
        for _ in range(int(rng.uniform(1.5, 6.0) * px / 2)):
            heading += rng.normal(0, 0.25)
            x, y = x + 2 * np.cos(heading), y + 2 * np.sin(heading)
            points.append((x, y))
        line = np.asarray(points, np.float32).round().astype(np.int32)
        cv2.polylines(hairs, [line], False, 255, 1, cv2.LINE_AA)
    _blend(window, hairs / 255.0 * 0.9, np.asarray(renderer.look.colour) * 1.05)
    mask = hairs > 50
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


_STAINS = np.array(
    [[45, 35, 25], [120, 62, 30], [40, 70, 150], [18, 18, 18], [150, 40, 40]],
    np.float32,
)


def _paint_contamination(
    window: np.ndarray, geo: StripGeometry, renderer: RopeRenderer, spec: DefectSpec
) -> np.ndarray:
    rng = spec.rng()
    px = renderer.look.px_per_mm
    col = int(np.clip(spec.x_px - geo.x0, 0, len(geo.centre) - 1))
    cy = geo.centre[col] + rng.uniform(-0.9, 0.9) * geo.radius[col]
    size = float(rng.uniform(2.0, 6.0)) * px
    blob = np.zeros(window.shape[:2], np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        centre = (int(col + rng.normal(0, size / 4)), int(cy + rng.normal(0, size / 5)))
        axes = (
            int(size * rng.uniform(0.2, 0.5)) + 1,
            int(size * rng.uniform(0.15, 0.35)) + 1,
        )
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(blob, (0, 0), 1.2) / 255.0
    texture = rng.uniform(0.75, 1.15, window.shape[:2]).astype(np.float32)[..., None]
    colour = _STAINS[int(rng.integers(0, len(_STAINS)))] * texture
    _blend(window, alpha * 0.92, colour)
    return alpha > 0.12


def _paint_open_strand(
    window: np.ndarray, geo: StripGeometry, renderer: RopeRenderer, spec: DefectSpec
) -> np.ndarray:
    rng = spec.rng()
    px = renderer.look.px_per_mm
    side = int(rng.choice([-1, 1]))
    length = float(rng.uniform(10.0, 22.0)) * px
    xs, ys = _grid(window, geo)
    p = np.clip((xs - spec.x_px) / length + 0.5, 0.0, 1.0)
    arch = np.sin(np.pi * p) * ((xs - spec.x_px) ** 2 < (length / 2) ** 2)
    radius = geo.radius[None, :]
    lift = float(rng.uniform(0.35, 0.9)) * radius * arch
    depth = side * (ys - geo.centre[None, :])
    tube_w = 0.55 * radius * (0.5 + 0.5 * arch)
    inner = radius + lift
    tube = (arch > 0.05) & (depth >= inner - 0.2 * radius) & (depth < inner + tube_w)
    gap = (arch > 0.05) & (depth >= 0.75 * radius) & (depth < inner)
    vacated = (arch > 0.3) & (depth >= 0.6 * radius) & (depth < radius)
    window[gap] = np.asarray(renderer.look.background, np.uint8)
    window[vacated] = (window[vacated] * 0.45).astype(np.uint8)
    across = np.clip((depth - inner) / np.maximum(tube_w, 1.0), 0, 1)
    stripes = 0.85 + 0.15 * np.sin((xs + side * ys * 0.8) / px * 2.5)
    light = (0.3 + 0.7 * np.sqrt(np.clip(1 - (2 * across - 1) ** 2, 0, 1))) * stripes
    colour = light[..., None] * np.asarray(renderer.look.colour, np.float32)
    window[tube] = np.clip(colour[tube], 0, 255).astype(np.uint8)
    return tube | gap | vacated


def _paint_thickness(
    window: np.ndarray, geo: StripGeometry, renderer: RopeRenderer, spec: DefectSpec
) -> np.ndarray:
    _, ys = _grid(window, geo)
    nominal = renderer.look.radius_px
    changed = np.abs(geo.radius / nominal - 1.0) > 0.04
    reach = np.maximum(geo.radius, nominal)[None, :] + 1.0
    return changed[None, :] & (np.abs(ys - geo.centre[None, :]) <= reach)


PAINTERS = {
    "cut_strand": _paint_cut,
    "fuzz": _paint_fuzz,
    "contamination": _paint_contamination,
    "open_strand": _paint_open_strand,
    "thickness": _paint_thickness,
}
