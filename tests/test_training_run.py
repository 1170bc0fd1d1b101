"""`rope-inspect train` / `eval` end to end on a tiny synthetic MVTec-layout folder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from rope_inspect.cli import main
from rope_inspect.engine.sidecar import read_sidecar
from rope_inspect.errors import ConfigError
from rope_inspect.training.checkpoint import read_checkpoint
from rope_inspect.training.config import load_train_config
from rope_inspect.training.loop import Trainer


def _rope(rng: np.random.Generator, defect: bool = False) -> tuple[np.ndarray, ...]:
    image = rng.normal(45, 4, (64, 128, 3))
    cols = np.arange(128)[None, :]
    strands = 70 + 60 * (np.sin((cols + 2 * np.arange(20)[:, None]) / 4.0) > 0.3)
    image[22:42] = strands[..., None] + rng.normal(0, 10, (20, 128, 3))
    mask = np.zeros((64, 128), np.uint8)
    if defect:
        image[26:36, 50:62] = (200, 40, 40)
        mask[26:36, 50:62] = 255
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train/good", 3), ("validation/good", 2), ("test/good", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / split / f"{i:03d}.png"), _rope(rng)[0])
    (root / "test" / "cut").mkdir(parents=True)
    (root / "ground_truth" / "cut").mkdir(parents=True)
    for i in range(2):
        image, mask = _rope(rng, defect=True)
        cv2.imwrite(str(root / "test" / "cut" / f"{i:03d}.png"), image)
        cv2.imwrite(str(root / "ground_truth" / "cut" / f"{i:03d}_mask.png"), mask)
    return root


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    config = {
        "name": "tiny",
        "seed": 3,
        "threads": 1,
        "checkpoint_every": 2,
        "validation_tiles": 2,
        "data": {
            "root": str(_dataset(tmp_path / "ds")),
            "tile": 32,
            "mask_downscale": 2,
        },
        "model": {
            "recon_width": 4,
            "seg_width": 4,
            "depth": 2,
            "transformer_heads": 2,
            "aspp": True,
            "transformer": True,
            "skip_connections": True,
            "dual_attention": True,
            "attention_reduction": 2,
        },
        "synthesis": {"mask_constrained": "envelope", "envelope_margin_px": 4},
        "optim": {"steps": 3, "batch_size": 2, "lr": 0.001},
        "eval": {
            "overlap": 16,
            "smoothing_sigma": 1.0,
            "envelope_margin_px": 8,
            "batch_size": 4,
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_train_resume_and_eval(recipe: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "tiny"
    assert main(["train", "--config", str(recipe), "--out", str(run)]) == 0
    assert {"last.pt", "best.pt", "metrics.json", "config.resolved.yaml"} <= {
        p.name for p in run.iterdir()
    }
    payload = read_checkpoint(run / "last.pt")
    assert payload["step"] == 3
    assert {"optimizer", "scheduler", "rng", "train_config"} <= set(payload)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["peak_rss_mb"] > 0
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["model"]["aspp"] is True

    # a second train into the same folder needs --resume
    assert main(["train", "--config", str(recipe), "--out", str(run)]) == 2
    args = ["train", "--config", str(recipe), "--out", str(run), "--resume"]
    assert main([*args, "--set", "optim.steps=5"]) == 0
    assert read_checkpoint(run / "last.pt")["step"] == 5

    assert main(["eval", "--run", str(run), "--overlays"]) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["images"] == 4 and report["step"] == 5
    assert set(report["metrics"]) == {"overall", "cut"}
    assert 0.0 <= report["metrics"]["overall"]["pixel_auroc"] <= 1.0
    assert (run / "eval" / "roc_pixel.png").stat().st_size > 0
    assert len(list((run / "eval" / "overlays").glob("*.png"))) == 4


def test_resume_continues_exactly(recipe: Path, tmp_path: Path) -> None:
    cfg = load_train_config(recipe, ["optim.steps=4", "validation_tiles=0"])
    straight = Trainer(cfg, tmp_path / "a")
    straight.run(progress=False)

    interrupted = Trainer(cfg, tmp_path / "b")
    interrupted.train_step()
    interrupted.train_step()
    interrupted.checkpoint(wall=1.0)
    resumed = Trainer(cfg, tmp_path / "b")
    resumed.resume()
    assert resumed.step == 2
    resumed.run(progress=False)

    assert straight.history == resumed.history
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_overrides_are_validated(recipe: Path) -> None:
    cfg = load_train_config(recipe, ["model.aspp=false", "optim.lr=0.01"])
    assert cfg.model.aspp is False and cfg.optim.lr == 0.01
    with pytest.raises(ConfigError, match=r"model\.asp"):
        load_train_config(recipe, ["model.asp=false"])
    with pytest.raises(ConfigError, match=r"synthesis\.mask_constrained"):
        load_train_config(recipe, ["synthesis.mask_constrained=everywhere"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_train_config(recipe, ["model.aspp"])


def test_missing_data_folder_is_named(recipe: Path, tmp_path: Path) -> None:
    args = ["train", "--config", str(recipe), "--out", str(tmp_path / "r")]
    assert main([*args, "--set", f"data.root={tmp_path / 'absent'}"]) == 2


@pytest.mark.slow
def test_train_on_tall_tiles_then_eval_and_export_that_shape(
    recipe: Path, tmp_path: Path
) -> None:
    """data.tile_across: the model trains, evaluates and exports on 64 x 32 tiles."""
    run = tmp_path / "runs" / "tall"
    tall = ["--set", "data.tile_across=64", "--set", "optim.steps=2"]
    assert main(["train", "--config", str(recipe), "--out", str(run), *tall]) == 0
    cfg = load_train_config(recipe, ["data.tile_across=64"])
    batches = Trainer(cfg, tmp_path / "probe").batches.draw(3)
    assert all(tuple(t.shape[2:]) == (64, 32) for t in batches)

    assert main(["eval", "--run", str(run), "--no-overlays"]) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["tile"] == [64, 32]  # eval follows the training shape
    out = tmp_path / "tall.onnx"
    assert main(["export", "--run", str(run), "--out", str(out), "--opset", "17"]) == 0
    assert read_sidecar(out).tile_shape == (64, 32)
