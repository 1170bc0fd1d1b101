"""A still dataset of the synthetic rope in the MVTec AD layout, for the demo model.

    out_dir/train/good/NNN.png            defect-free frames
    out_dir/validation/good/NNN.png       defect-free frames (thresholds, model choice)
    out_dir/test/good/NNN.png             defect-free test frames
    out_dir/test/<kind>/NNN.png           one defect of that kind near the frame centre
    out_dir/ground_truth/<kind>/NNN_mask.png   8-bit mask, 255 = defect

Frames come from the same renderer and defect painters as the synthetic line, at
random places along the seeded rope, so a model trained here sees what the demo
camera shows. Everything is reproducible from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rope_inspect.acquisition.rope_defects import DEFECT_KINDS, DefectSpec
from rope_inspect.acquisition.rope_render import RopeLook
from rope_inspect.acquisition.synthetic import SENSOR_NOISE_LEVELS, RopeScene
from rope_inspect.errors import DataError

_ROPE_SPAN_PX = 50_000_000


@dataclass
class DatasetSummary:
    """What `render_dataset` wrote: image counts per split/kind and mean defect area."""

    root: Path
    counts: dict[str, int] = field(default_factory=dict)
    mean_defect_area_px: dict[str, float] = field(default_factory=dict)


def _with_sensor_noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The live synthetic camera's sensor noise, so stills match its frames."""
    noise = rng.integers(0, SENSOR_NOISE_LEVELS, rgb.shape, dtype=np.uint8)
    return cv2.add(rgb, noise)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise DataError(f"cannot write {path}", "check that the folder is writable")


def _good_frames(
    scene: RopeScene, out: Path, count: int, width: int, rng: np.random.Generator
) -> None:
    for i in range(count):
        x0 = int(rng.integers(0, _ROPE_SPAN_PX))
        span = scene.render_span(x0, width, defects=[])
        _write(out / f"{i:03d}.png", _with_sensor_noise(span.image, rng))


def _defect_frame(
    scene: RopeScene, kind: str, width: int, rng: np.random.Generator, defect_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """A frame with one defect of `kind` near its centre, and the defect's mask."""
    for attempt in range(20):
        x0 = int(rng.integers(0, _ROPE_SPAN_PX))
        x_px = x0 + width * float(rng.uniform(0.3, 0.7))
        spec = DefectSpec(defect_id * 100 + attempt, kind, x_px, scene.look.seed)
        span = scene.render_span(x0, width, defects=[spec])
        truth = span.truth(x0, width, scene.px_per_m)
        if truth:
            mask = np.zeros(span.image.shape[:2], dtype=bool)
            for t in truth:
                mask |= t.full_mask(mask.shape)
            return span.image, mask
    raise DataError(f"could not place a visible {kind} defect", "use a wider frame")


def render_dataset(
    out_dir: str | Path,
    n_train: int,
    n_test_per_type: int,
    width: int = 640,
    height: int = 224,
    seed: int = 0,
    *,
    n_validation: int | None = None,
    px_per_mm: float = 6.0,
    diameter_mm: float = 10.0,
    kinds: tuple[str, ...] = DEFECT_KINDS,
) -> DatasetSummary:
    """Render the synthetic rope dataset into out_dir (see the module docstring)."""
    root = Path(out_dir)
    look = RopeLook(
        height=height, px_per_mm=px_per_mm, diameter_mm=diameter_mm, seed=seed
    )
    scene = RopeScene(look, defects_per_m=0.0)
    rng = np.random.default_rng([seed, 21])
    n_val = max(1, n_train // 10) if n_validation is None else n_validation
    summary = DatasetSummary(root)
    splits = (("train", n_train), ("validation", n_val), ("test", n_test_per_type))
    for split, count in splits:
        _good_frames(scene, root / split / "good", count, width, rng)
        summary.counts[f"{split}/good"] = count
    for k, kind in enumerate(kinds):
        areas = []
        for i in range(n_test_per_type):
            image, mask = _defect_frame(scene, kind, width, rng, k * 100_000 + i)
            _write(
                root / "test" / kind / f"{i:03d}.png", _with_sensor_noise(image, rng)
            )
            mask_path = root / "ground_truth" / kind / f"{i:03d}_mask.png"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
            areas.append(int(mask.sum()))
        summary.counts[f"test/{kind}"] = n_test_per_type
        summary.mean_defect_area_px[kind] = float(np.mean(areas)) if areas else 0.0
    return summary
