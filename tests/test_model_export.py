"""ONNX export of the detection model: parity with torch, dynamic batch, sidecar."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rope_inspect.cli import build_parser
from rope_inspect.engine.sidecar import Sidecar, file_sha256, read_sidecar
from rope_inspect.errors import ConfigError, EngineError
from rope_inspect.model import export as export_module
from rope_inspect.model.commands import export_command
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.export import TileModel, export_onnx, fixed_tiles
from rope_inspect.model.export_source import state_dict_sha256

TILE = 32
TOLERANCE = 1e-3  # max |diff| of anomaly map and score, ONNX Runtime vs torch


def tiny_model(seed: int, **switches: bool) -> DraemModel:
    torch.manual_seed(seed)
    values = {"recon_width": 8, "seg_width": 8, "depth": 3, "transformer_heads": 2}
    model = DraemModel(ModelConfig.model_validate({**values, **switches}))
    # a few BatchNorm statistics that are not the defaults, so eval mode matters
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, TILE, TILE))
    return model.eval()


ALL_ON = {
    "skip_connections": True,
    "dual_attention": True,
    "transformer": True,
    "aspp": True,
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DraemModel, Path]:
    model = tiny_model(0, **ALL_ON)
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    export_onnx(model, out, opset=18, tile=TILE)
    return model, out


def run_both(model: DraemModel, path: Path, batch: int) -> tuple[np.ndarray, ...]:
    tiles = fixed_tiles(batch, TILE, seed=100 + batch)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_map, ort_score = session.run(["anomaly_map", "score"], {"tiles": tiles})
    with torch.no_grad():
        ref_map, ref_score = TileModel(model)(torch.from_numpy(tiles))
    return ort_map, ort_score, ref_map.numpy(), ref_score.numpy()


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_runtime_matches_torch(
    exported: tuple[DraemModel, Path], batch: int
) -> None:
    model, path = exported
    ort_map, ort_score, ref_map, ref_score = run_both(model, path, batch)
    assert ort_map.shape == (batch, 1, TILE, TILE)
    assert ort_score.shape == (batch,)
    assert np.abs(ort_map - ref_map).max() <= TOLERANCE
    assert np.abs(ort_score - ref_score).max() <= TOLERANCE
    assert ref_map.std() > 0  # not a constant map that would agree trivially


def test_graph_takes_uint8_tiles_with_a_dynamic_batch(
    exported: tuple[DraemModel, Path],
) -> None:
    graph = onnx.load(str(exported[1]))
    (tiles,) = graph.graph.input
    assert tiles.name == "tiles"
    assert tiles.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in tiles.type.tensor_type.shape.dim]
    assert dims == ["n", TILE, TILE, 3]
    assert [o.name for o in graph.graph.output] == ["anomaly_map", "score"]


def test_sidecar_describes_the_engine(exported: tuple[DraemModel, Path]) -> None:
    model, path = exported
    sidecar = read_sidecar(path)
    assert sidecar.format == "onnx"
    assert sidecar.engine_sha256 == file_sha256(path)
    assert sidecar.model_sha256 == state_dict_sha256(model)
    assert sidecar.architecture == model.cfg.switches()
    assert sidecar.architecture["transformer"] is True
    assert sidecar.tile == TILE
    assert sidecar.channel_order == "RGB"
    assert sidecar.opset == 18
    assert {"torch", "onnx", "onnxruntime"} <= set(sidecar.versions)
    parity = (sidecar.model_extra or {})["parity"]
    assert parity["batches"] == [1, 3]
    assert parity["map_max_abs_diff"] <= parity["tolerance"] == TOLERANCE


def test_a_graph_that_disagrees_is_refused_and_not_left_behind(
    exported: tuple[DraemModel, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good_graph = exported[1]

    def write_wrong_graph(*args: Path) -> None:
        # the graph of another model's weights stands in for a broken exporter
        shutil.copyfile(good_graph, args[2])

    monkeypatch.setattr(export_module, "write_onnx", write_wrong_graph)
    out = tmp_path / "bad.onnx"
    with pytest.raises(EngineError, match="disagrees with torch"):
        export_onnx(tiny_model(1, **ALL_ON), out, tile=TILE)
    assert list(tmp_path.iterdir()) == []


def test_export_command_reads_a_run_folder(
    exported: tuple[DraemModel, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, good_graph = exported
    data = tmp_path / "data"
    data.mkdir()
    (data / "LICENSE.txt").write_text("Copyright X\n\nAttribution-NonCommercial 4.0\n")
    run = tmp_path / "run"
    run.mkdir()
    checkpoint = {
        "model_config": model.cfg.model_dump(mode="json"),
        "state_dict": model.state_dict(),
        "train_config": {"name": "tiny", "data": {"root": str(data), "tile": TILE}},
        "step": 7,
    }
    torch.save(checkpoint, run / "last.pt")
    # same weights as the fixture's graph, so reuse it instead of exporting again
    monkeypatch.setattr(
        export_module,
        "write_onnx",
        lambda *args: shutil.copyfile(good_graph, args[2]),
    )
    out = tmp_path / "engines" / "rope.onnx"
    args = build_parser().parse_args(
        ["export", "--run", str(run), "--out", str(out), "--opset", "18"]
    )

    assert export_command(args) == 0
    sidecar = read_sidecar(out)
    assert sidecar.tile == TILE
    assert sidecar.model_sha256 == file_sha256(run / "last.pt")
    assert "NonCommercial" in sidecar.trained_on
    assert "step 7" in sidecar.trained_on
    assert "max |diff|" in capsys.readouterr().out


def test_a_non_square_tile_exports_and_runs(tmp_path: Path) -> None:
    """A tile as tall as the rope band: N x 64 x 32 x 3 in, N x 1 x 64 x 32 out."""
    model = tiny_model(0, **ALL_ON)
    out = tmp_path / "tall.onnx"
    sidecar = export_onnx(model, out, opset=17, tile=(64, TILE))
    assert sidecar.tile_shape == (64, TILE) and sidecar.tile_height == 64
    assert read_sidecar(out).tile_shape == (64, TILE)
    tiles = fixed_tiles(3, (64, TILE), seed=4)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ort_map, ort_score = session.run(["anomaly_map", "score"], {"tiles": tiles})
    with torch.no_grad():
        ref_map, ref_score = TileModel(model)(torch.from_numpy(tiles))
    assert ort_map.shape == (3, 1, 64, TILE)
    np.testing.assert_allclose(ort_map, ref_map.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(ort_score, ref_score.numpy(), atol=TOLERANCE)
    with pytest.raises(ConfigError, match="multiple of 8"):
        export_onnx(model, tmp_path / "odd.onnx", opset=17, tile=(60, TILE))


def test_opset_17_uses_the_torchscript_exporter(tmp_path: Path) -> None:
    model = tiny_model(2, transformer=True, aspp=True)
    sidecar: Sidecar = export_onnx(model, tmp_path / "m17.onnx", opset=17, tile=TILE)
    assert sidecar.opset == 17
    assert "dynamo=False" in sidecar.versions["exporter"]
    ort_map, _, ref_map, _ = run_both(model, tmp_path / "m17.onnx", 2)
    assert np.abs(ort_map - ref_map).max() <= TOLERANCE


def test_bad_requests_are_refused_before_exporting(tmp_path: Path) -> None:
    model = tiny_model(3)
    with pytest.raises(ConfigError, match="multiple of 8"):
        export_onnx(model, tmp_path / "x.onnx", tile=36)
    with pytest.raises(ConfigError, match="opset 16"):
        export_onnx(model, tmp_path / "x.onnx", opset=16, tile=TILE)
    assert not (tmp_path / "x.onnx").exists()
