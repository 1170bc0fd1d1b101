"""torch backend against ONNX Runtime on a small exported DraemModel."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.errors import EngineError, EngineMismatch, MissingExtra
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.export import export_onnx, fixed_tiles

TILE = 32


def _save_checkpoint(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    cfg = ModelConfig.cpu_small(recon_width=8, seg_width=4, depth=3)
    model = DraemModel(cfg)
    payload = {
        "model_config": cfg.model_dump(mode="json"),
        "state_dict": model.state_dict(),
        "train_config": {"name": "tiny", "data": {"tile": TILE}},
        "step": 1,
    }
    torch.save(payload, path)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """engines/tiny.onnx with its sidecar and the checkpoint tiny.pt beside it."""
    folder = tmp_path_factory.mktemp("engines")
    checkpoint = folder / "tiny.pt"
    _save_checkpoint(checkpoint, seed=0)
    # opset 17 (TorchScript exporter) exports in ~2 s here; 18 (dynamo) takes ~15 s
    export_onnx(checkpoint, folder / "tiny.onnx", opset=17, tile=TILE)
    return folder / "tiny.onnx"


def _cfg(path: Path, backend: str, **kw: object) -> EngineConfig:
    values = {"model": path, "backend": backend, "threads": 1, **kw}
    return EngineConfig.model_validate(values)


def test_onnxruntime_runs_the_exported_model(exported: Path) -> None:
    engine = load_engine(_cfg(exported, "onnxruntime", max_batch=2), TILE)
    maps, scores = engine.infer(fixed_tiles(5, TILE))
    assert maps.shape == (5, 1, TILE, TILE) and maps.dtype == np.float32
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_torch_and_onnxruntime_agree(exported: Path) -> None:
    tiles = fixed_tiles(6, TILE, seed=7)
    ort_engine = load_engine(_cfg(exported, "onnxruntime"), TILE)
    torch_engine = load_engine(_cfg(exported, "torch", max_batch=4), TILE)
    assert torch_engine.name == "torch-cpu"
    ort_maps, ort_scores = (a.copy() for a in ort_engine.infer(tiles))
    maps, scores = torch_engine.infer(tiles)
    assert maps.shape == ort_maps.shape and scores.shape == ort_scores.shape
    np.testing.assert_allclose(maps, ort_maps, atol=1e-3)
    np.testing.assert_allclose(scores, ort_scores, atol=1e-3)
    torch_engine.close()


def test_torch_from_a_checkpoint_alone(exported: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "alone.pt"
    shutil.copy(exported.with_suffix(".pt"), checkpoint)
    engine = load_engine(_cfg(checkpoint, "torch"), TILE)
    assert engine.sidecar.format == "torch" and engine.sidecar.tile == TILE
    assert engine.sidecar.rope_axis == "horizontal"  # the recipe's default
    maps, _ = engine.infer(fixed_tiles(2, TILE))
    assert maps.shape == (2, 1, TILE, TILE)
    # fully convolutional: a checkpoint alone serves any tile shape its stride allows
    tall = load_engine(_cfg(checkpoint, "torch"), (64, TILE))
    assert tall.sidecar.tile_shape == (64, TILE)
    maps, _ = tall.infer(np.ascontiguousarray(fixed_tiles(2, 64)[:, :, :TILE]))
    assert maps.shape == (2, 1, 64, TILE)
    with pytest.raises(EngineMismatch, match="multiples of 8 px"):
        load_engine(_cfg(checkpoint, "torch"), (36, TILE))


def test_torch_refuses_a_checkpoint_the_onnx_did_not_come_from(
    exported: Path, tmp_path: Path
) -> None:
    shutil.copy(exported, tmp_path / "tiny.onnx")
    shutil.copy(exported.with_name("tiny.onnx.json"), tmp_path / "tiny.onnx.json")
    _save_checkpoint(tmp_path / "tiny.pt", seed=1)  # other weights
    with pytest.raises(EngineMismatch) as info:
        load_engine(_cfg(tmp_path / "tiny.onnx", "torch"), TILE)
    assert "not the one" in info.value.message
    assert "rope-inspect export" in info.value.hint


def test_torch_without_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        load_engine(_cfg(tmp_path / "nothing.onnx", "torch"), TILE)
    assert "nothing.pt" in info.value.message
    assert ".pt" in info.value.hint


def test_missing_torch_names_the_extra(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "rope_inspect.engine.torch_backend", raising=False)
    with pytest.raises(MissingExtra) as info:
        load_engine(_cfg(exported, "torch"), TILE)
    assert "rope-inspect[train]" in info.value.hint
