"""ONNX Runtime backend and the loader, on small graphs built with onnx.helper."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_helpers import save_engine

from rope_inspect.config import EngineConfig
from rope_inspect.engine.base import Engine
from rope_inspect.engine.loader import load_engine
from rope_inspect.engine.sidecar import (
    Sidecar,
    file_sha256,
    sidecar_path,
    write_sidecar,
)
from rope_inspect.errors import EngineError, EngineMismatch, RopeInspectError

TILE = 16


def _mean_graph(gain: float) -> onnx.ModelProto:
    """anomaly_map = gain * mean(tiles) / 255 per pixel; score = max of the map."""
    tiles = helper.make_tensor_value_info(
        "tiles", TensorProto.UINT8, ["N", TILE, TILE, 3]
    )
    amap = helper.make_tensor_value_info(
        "anomaly_map", TensorProto.FLOAT, ["N", 1, TILE, TILE]
    )
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    consts = [
        helper.make_tensor("axis_c", TensorProto.INT64, [1], [3]),
        helper.make_tensor("axes_s", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [gain / 255.0]),
    ]
    nodes = [
        helper.make_node("Cast", ["tiles"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f", "axis_c"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "scale"], ["ms"]),
        helper.make_node("Transpose", ["ms"], ["anomaly_map"], perm=[0, 3, 1, 2]),
        helper.make_node("ReduceMax", ["anomaly_map", "axes_s"], ["score"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "mean", [tiles], [amap, score], initializer=consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _write_engine(folder: Path, gain: float = 1.0, name: str = "m.onnx") -> Path:
    return save_engine(_mean_graph(gain), folder / name, TILE, "mean")


def _tiles(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, TILE, TILE, 3), dtype=np.uint8)


def _expected(tiles: np.ndarray, gain: float = 1.0) -> np.ndarray:
    return (gain * tiles.astype(np.float32).mean(axis=3) / 255.0)[:, None]


@pytest.fixture
def engine_path(tmp_path: Path) -> Path:
    return _write_engine(tmp_path)


def _cfg(path: Path, **kw: object) -> EngineConfig:
    return EngineConfig.model_validate({"model": path, "threads": 1, **kw})


def test_infer_shapes_dtypes_and_values(engine_path: Path) -> None:
    engine = load_engine(_cfg(engine_path), TILE)
    assert isinstance(engine, Engine)
    assert engine.name == "onnxruntime-CPU"
    tiles = _tiles(5)
    maps, scores = engine.infer(tiles)
    assert maps.shape == (5, 1, TILE, TILE) and maps.dtype == np.float32
    assert scores.shape == (5,) and scores.dtype == np.float32
    np.testing.assert_allclose(maps, _expected(tiles), atol=1e-6)
    np.testing.assert_allclose(scores, _expected(tiles).max(axis=(1, 2, 3)), atol=1e-6)
    engine.close()


def test_batches_larger_than_max_batch_are_split(engine_path: Path) -> None:
    engine = load_engine(_cfg(engine_path, max_batch=3), TILE)
    tiles = _tiles(8, seed=1)
    maps, scores = engine.infer(tiles)
    assert maps.shape == (8, 1, TILE, TILE)
    np.testing.assert_allclose(maps, _expected(tiles), atol=1e-6)

    fewer = _tiles(2, seed=2)
    maps, scores = engine.infer(fewer)
    assert maps.shape == (2, 1, TILE, TILE) and scores.shape == (2,)
    np.testing.assert_allclose(maps, _expected(fewer), atol=1e-6)


def test_empty_batch_gives_empty_outputs(engine_path: Path) -> None:
    engine = load_engine(_cfg(engine_path), TILE)
    maps, scores = engine.infer(np.empty((0, TILE, TILE, 3), np.uint8))
    assert maps.shape == (0, 1, TILE, TILE) and scores.shape == (0,)


def test_outputs_reuse_engine_buffers_once_warm(engine_path: Path) -> None:
    engine = load_engine(_cfg(engine_path), TILE)
    first, _ = engine.infer(_tiles(4))
    second, _ = engine.infer(_tiles(4, seed=3))
    assert np.shares_memory(first, second)


def test_wrong_tile_input_is_refused(engine_path: Path) -> None:
    engine = load_engine(_cfg(engine_path), TILE)
    with pytest.raises(EngineError, match="uint8 N x 16 x 16 x 3"):
        engine.infer(np.zeros((2, TILE, TILE, 3), np.float32))
    with pytest.raises(EngineError, match="C-contiguous"):
        engine.infer(_tiles(4)[::2])


def test_nan_output_raises_engine_error(tmp_path: Path) -> None:
    path = _write_engine(tmp_path, gain=float("nan"))
    engine = load_engine(_cfg(path), TILE)
    with pytest.raises(EngineError, match="NaN or inf"):
        engine.infer(_tiles(2))


def test_inf_output_raises_engine_error(tmp_path: Path) -> None:
    path = _write_engine(tmp_path, gain=float("inf"))
    engine = load_engine(_cfg(path), TILE)
    with pytest.raises(EngineError, match="NaN or inf"):
        engine.infer(_tiles(2))


def test_tile_mismatch_is_refused_with_hint(engine_path: Path) -> None:
    with pytest.raises(EngineMismatch) as info:
        load_engine(_cfg(engine_path), 32)
    assert "16 px tiles, config asks 32 px" in info.value.message
    assert "tiling.tile: 16" in info.value.hint
    assert "rope-inspect export" in info.value.hint


def test_channel_order_mismatch_is_refused(engine_path: Path) -> None:
    with pytest.raises(EngineMismatch, match="expects RGB, pipeline gives BGR"):
        load_engine(_cfg(engine_path), TILE, channel_order="BGR")


def test_replaced_engine_file_is_refused(engine_path: Path) -> None:
    onnx.save(_mean_graph(0.5), str(engine_path))  # sidecar still describes gain 1
    with pytest.raises(EngineMismatch) as info:
        load_engine(_cfg(engine_path), TILE)
    assert "does not match its sidecar" in info.value.message
    assert "rebuild or re-export" in info.value.hint


def test_missing_or_malformed_sidecar_is_refused(engine_path: Path) -> None:
    side = sidecar_path(engine_path)
    side.write_text(json.dumps({"format": "onnx"}))
    with pytest.raises(EngineMismatch, match="malformed"):
        load_engine(_cfg(engine_path), TILE)
    side.unlink()
    with pytest.raises(EngineMismatch, match="has no sidecar"):
        load_engine(_cfg(engine_path), TILE)


def test_missing_engine_file_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        load_engine(_cfg(tmp_path / "absent.onnx"), TILE)
    assert "does not exist" in info.value.message
    assert "rope-inspect export" in info.value.hint


def test_graph_without_contract_outputs_is_refused(tmp_path: Path) -> None:
    model = _mean_graph(1.0)
    model.graph.output[1].name = "other"
    model.graph.node[-1].output[0] = "other"
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    write_sidecar(
        path,
        Sidecar(
            format="onnx",
            engine_sha256=file_sha256(path),
            model_sha256="",
            architecture={},
            tile=TILE,
        ),
    )
    with pytest.raises(EngineMismatch, match="lacks outputs"):
        load_engine(_cfg(path), TILE)


def test_cuda_asked_without_provider_is_refused(engine_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EngineError, match="no CUDAExecutionProvider"):
        load_engine(_cfg(engine_path, device="cuda"), TILE)


def test_tensorrt_backend_without_its_module_or_package_is_clear(
    engine_path: Path,
) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(RopeInspectError) as info:
        load_engine(_cfg(engine_path, backend="tensorrt"), TILE)
    assert info.value.hint


def test_batch_sizes_seen_before_and_growing_buffers_give_right_values(
    engine_path: Path,
) -> None:
    engine = load_engine(_cfg(engine_path, max_batch=3), TILE)
    for count, seed in ((2, 4), (8, 5), (2, 6), (11, 7), (8, 8), (0, 9), (8, 10)):
        tiles = _tiles(count, seed=seed)
        maps, scores = engine.infer(tiles)
        assert maps.shape == (count, 1, TILE, TILE) and scores.shape == (count,)
        np.testing.assert_allclose(maps, _expected(tiles), atol=1e-6)
        np.testing.assert_allclose(
            scores, _expected(tiles).max(axis=(1, 2, 3)), atol=1e-6
        )
    engine.close()


def test_infer_allocates_nothing_for_a_batch_size_seen_before(
    engine_path: Path,
) -> None:
    import tracemalloc

    engine = load_engine(_cfg(engine_path, max_batch=4), TILE)
    buffer = _tiles(6)
    tiles = buffer[:6]
    for _ in range(3):
        engine.infer(tiles)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        engine.infer(tiles)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    engine.close()
    # ~64 B inside ONNX Runtime's binding call and a shape tuple; rebinding took ~1 KB
    assert peak <= 256


def test_loading_an_engine_needs_no_onnx_package() -> None:
    """The runtime install has onnxruntime, not onnx (that comes with `train`)."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "from rope_inspect.config import EngineConfig\n"
        "from rope_inspect.engine.loader import load_engine\n"
        "engine = load_engine(EngineConfig(model='engines/demo.onnx'), (224, 160))\n"
        "print(engine.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "onnxruntime" in done.stdout
