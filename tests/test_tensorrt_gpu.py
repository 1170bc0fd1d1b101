"""TensorRT on a real GPU: build, parity, runtime, CUDA-side tiling, threads, refusal.

Skipped unless `tensorrt` and `pycuda` import and a CUDA device answers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_build_engine_ort import TILE, write_tiny_engine

from rope_inspect.cli import main
from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.engine.parity import onnxruntime_infer
from rope_inspect.engine.sidecar import read_sidecar, sidecar_path
from rope_inspect.errors import EngineMismatch
from rope_inspect.vision.tiling import cut_tiles, stitch, tile_grid

pytestmark = pytest.mark.gpu


def _gpu_ready() -> str | None:
    try:
        import pycuda.driver as cuda
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"needs tensorrt and pycuda ({exc.name} missing)"
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except cuda.Error as exc:
        return f"CUDA unavailable: {exc}"
    return None


_WHY = _gpu_ready()
if _WHY is not None:
    pytest.skip(_WHY, allow_module_level=True)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trt")
    onnx_path = write_tiny_engine(folder)
    built = {"onnx": onnx_path}
    for precision in ("fp32", "fp16"):
        code = main(
            ["build-engine", "--model", str(onnx_path), "--precision", precision,
             "--max-batch", "16", "--opt-batch", "8", "--workspace", "256",
             "--out", str(folder)]
        )  # fmt: skip
        assert code == 0
        built[precision] = folder / f"tiny.{precision}.plan"
    return built


def _engine(plan: Path, max_batch: int = 16) -> Any:
    cfg = EngineConfig(backend="tensorrt", model=plan, max_batch=max_batch)
    return load_engine(cfg, TILE)


def _tiles(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, TILE, TILE, 3), dtype=np.uint8)


def test_sidecar_records_build(plans: dict[str, Path]) -> None:
    import tensorrt

    for precision in ("fp32", "fp16"):
        sidecar = read_sidecar(plans[precision])
        extra = sidecar.model_extra or {}
        assert sidecar.format == "tensorrt" and sidecar.precision == precision
        assert sidecar.versions["tensorrt"] == tensorrt.__version__
        assert sidecar.gpu_name and sidecar.compute_capability and sidecar.built_at
        assert extra["parity"]["passed"] is True
        assert extra["source_onnx_sha256"] == read_sidecar(plans["onnx"]).engine_sha256
    fp16 = read_sidecar(plans["fp16"]).model_extra or {}
    assert any("Softmax" in n or "SOFTMAX" in n for n in fp16["fp32_layers"])
    assert list(plans["fp32"].parent.glob("*.timing.cache"))


def test_plan_matches_onnxruntime_beyond_one_batch(plans: dict[str, Path]) -> None:
    engine = _engine(plans["fp32"], max_batch=4)
    try:
        tiles = _tiles(11)  # three calls of 4, 4, 3
        maps, scores = engine.infer(tiles)
        want_maps, want_scores = onnxruntime_infer(plans["onnx"])(tiles)
        assert np.abs(maps - want_maps).max() < 1e-3
        assert np.abs(scores - want_scores).max() < 1e-3
    finally:
        engine.close()


def test_cuda_side_tiling_equals_host_tiling(plans: dict[str, Path]) -> None:
    engine = _engine(plans["fp32"], max_batch=4)
    image = np.random.default_rng(5).integers(0, 256, (96, 200, 3), dtype=np.uint8)
    envelope = np.zeros((96, 200), bool)
    envelope[30:70, 10:190] = True
    grid = tile_grid(envelope, TILE, 8, 0.02)
    try:
        fast, fast_scores = engine.infer_frame(
            image, grid, np.empty((96, 200), np.float32)
        )
        fast_scores = fast_scores.copy()
        buf = np.empty((grid.count, TILE, TILE, 3), np.uint8)
        maps, scores = engine.infer(cut_tiles(image, grid, buf))
        host = stitch(maps, grid, np.empty((96, 200), np.float32))
        assert np.abs(fast - host).max() < 1e-4
        assert np.abs(fast_scores - scores).max() < 1e-4
        assert not fast[~envelope].any()  # masked to the envelope on the device
    finally:
        engine.close()


def test_worker_threads_each_get_their_own_context(plans: dict[str, Path]) -> None:
    engine = _engine(plans["fp16"])
    tiles = _tiles(8, seed=2)
    want = engine.infer(tiles)[0].copy()
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            maps, _ = engine.infer(tiles)
        results.append(maps.copy())

    threads = [threading.Thread(target=work) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 3
        assert all(np.array_equal(r, want) for r in results)
        assert len(engine._workers) == 4  # main thread + three workers
    finally:
        engine.close()


def test_plan_from_another_gpu_is_refused_with_rebuild_command(
    plans: dict[str, Path],
) -> None:
    path = sidecar_path(plans["fp32"])
    original = path.read_text()
    data = json.loads(original)
    data["gpu_name"] = "Some Other GPU"
    path.write_text(json.dumps(data))
    try:
        with pytest.raises(EngineMismatch) as err:
            _engine(plans["fp32"])
        assert "rope-inspect build-engine --model" in str(err.value)
    finally:
        path.write_text(original)
