"""render_dataset: the synthetic rope in the MVTec layout, for the demo model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rope_inspect.acquisition.rope_defects import DEFECT_KINDS
from rope_inspect.acquisition.synthetic_dataset import render_dataset


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def test_layout_counts_and_masks(tmp_path: Path) -> None:
    summary = render_dataset(tmp_path, n_train=3, n_test_per_type=2, width=320, seed=4)
    files = _files(tmp_path)
    assert [f for f in files if f.startswith("train/")] == [
        "train/good/000.png",
        "train/good/001.png",
        "train/good/002.png",
    ]
    assert "validation/good/000.png" in files
    for kind in DEFECT_KINDS:
        for i in range(2):
            image = cv2.imread(str(tmp_path / "test" / kind / f"{i:03d}.png"))
            mask = cv2.imread(
                str(tmp_path / "ground_truth" / kind / f"{i:03d}_mask.png"),
                cv2.IMREAD_UNCHANGED,
            )
            assert image is not None and mask is not None
            assert image.shape == (224, 320, 3)
            assert mask.shape == (224, 320) and mask.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 255}
        assert summary.mean_defect_area_px[kind] > 0
    assert summary.counts["test/good"] == 2
    assert not (tmp_path / "ground_truth" / "good").exists()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        render_dataset(root, n_train=2, n_test_per_type=1, width=256, seed=seed)
    assert _files(a) == _files(b)
    for name in _files(a):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train/good/000.png").read_bytes() != (
        c / "train/good/000.png"
    ).read_bytes()


def test_good_images_differ_from_each_other(tmp_path: Path) -> None:
    render_dataset(tmp_path, n_train=2, n_test_per_type=0, width=256, seed=0)
    first = cv2.imread(str(tmp_path / "train/good/000.png"))
    second = cv2.imread(str(tmp_path / "train/good/001.png"))
    assert first is not None and second is not None
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 5


def test_stills_match_the_live_cameras_frames(tmp_path: Path) -> None:
    """The demo model must train on what the demo camera delivers (sensor noise too)."""
    from rope_inspect.acquisition.synthetic import SyntheticSource
    from rope_inspect.config import LineConfig, SyntheticSourceConfig

    render_dataset(tmp_path, n_train=2, n_test_per_type=0, width=256, seed=0)
    stills = [
        cv2.imread(str(p))[:, :, ::-1] for p in (tmp_path / "train/good").iterdir()
    ]
    cfg = SyntheticSourceConfig(kind="synthetic", width=256, realtime=False, seed=0)
    source = SyntheticSource(cfg, LineConfig())
    source.open()
    slot = np.zeros(source.frame_shape, np.uint8)
    live = []
    for _ in range(2):
        source.read_into(slot, 2.0)
        live.append(slot.copy())
    source.close()

    def background(images: list[np.ndarray]) -> float:
        return float(np.mean([im[:24].mean() for im in images]))

    assert abs(background(stills) - background(live)) < 1.0
