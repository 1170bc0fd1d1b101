"""`build-engine` on a CPU: the ONNX Runtime path, parity, rejection, bad inputs.

The engine is a tiny graph with the export contract (uint8 tiles in, anomaly_map and
score out) holding the ops that matter for precision: Conv, LayerNormalization, Softmax.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_helpers import save_engine, tile_model

from rope_inspect.cli import main
from rope_inspect.engine import parity
from rope_inspect.engine.sidecar import (
    file_sha256,
    read_sidecar,
)

TILE = 32


def tiny_graph(tile: int = TILE, bias: float = 0.5) -> onnx.ModelProto:
    """conv -> layer norm -> relu -> 1x1 conv -> softmax; map = class 1; score = max."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
        "b1": np.zeros(8, np.float32),
        "w2": rng.normal(0, 0.3, (2, 8, 1, 1)).astype(np.float32),
        "b2": np.array([bias, -bias], np.float32),
        "scale": np.array(1 / 255, np.float32),
        "ln_g": np.ones((8, tile, tile), np.float32),
        "ln_b": np.zeros((8, tile, tile), np.float32),
        "s0": np.array([1], np.int64),
        "s1": np.array([2], np.int64),
        "ax": np.array([1], np.int64),
        "axes": np.array([1, 2, 3], np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Cast", ["tiles"], ["f"], to=TensorProto.FLOAT),
        node("Mul", ["f", "scale"], ["fs"]),
        node("Transpose", ["fs"], ["x"], perm=[0, 3, 1, 2]),
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        node(
            "LayerNormalization", ["c1", "ln_g", "ln_b"], ["n1"], axis=1, name="norm1"
        ),
        node("Relu", ["n1"], ["r1"]),
        node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        node("Softmax", ["c2"], ["p"], axis=1, name="softmax"),
        node("Slice", ["p", "s0", "s1", "ax"], ["anomaly_map"]),
        node("ReduceMax", ["anomaly_map", "axes"], ["score"], keepdims=0),
    ]
    return tile_model(nodes, arrays, tile, "tiny")


def write_tiny_engine(folder: Path, name: str = "tiny.onnx", tile: int = TILE) -> Path:
    return save_engine(
        tiny_graph(tile), folder / name, tile, "tiny", model_sha256="1" * 64, opset=18
    )


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_engine(tmp_path)


def _build(*args: str) -> int:
    return main(
        ["--log-format", "json", "--log-level", "warning", "build-engine", *args]
    )


def test_onnxruntime_path_writes_optimised_model_sidecar_and_parity(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "engines"
    code = _build(
        "--model", str(tiny), "--backend", "onnxruntime", "--precision", "fp32",
        "--out", str(out), "--parity-data", str(tmp_path / "no-data"),
    )  # fmt: skip
    assert code == 0
    engine = out / "tiny.ort.onnx"
    sidecar = read_sidecar(engine)
    assert sidecar.engine_sha256 == file_sha256(engine)
    assert sidecar.tile == TILE and sidecar.precision == "fp32"
    extra = sidecar.model_extra or {}
    assert extra["source_onnx_sha256"] == file_sha256(tiny)
    assert extra["optimisation"] == "ORT_ENABLE_EXTENDED"
    assert extra["parity"]["passed"] is True
    assert extra["parity"]["tile_source"] == "synthetic"
    assert extra["parity"]["max_abs_diff"] < 1e-4
    # portable: no hardware-specific NCHWc layout nodes were saved
    domains = {n.domain for n in onnx.load(str(engine)).graph.node}
    assert "com.microsoft.nchwc" not in domains
    printed = capsys.readouterr().out
    assert "parity PASS" in printed and "extended graph optimisation" in printed


def test_without_tensorrt_one_clear_line_and_nonzero_exit(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    code = _build("--model", str(tiny), "--out", str(tmp_path / "e"))
    assert code != 0
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert "TensorRT is not installed" in first
    assert "pip install 'rope-inspect[tensorrt]'" in first
    assert "--backend onnxruntime --precision fp32" in err
    assert not (tmp_path / "e").exists()


def test_onnxruntime_fp16_is_refused(tiny: Path, capsys: pytest.CaptureFixture[str]):
    code = _build("--model", str(tiny), "--backend", "onnxruntime")
    assert code != 0
    assert "--precision fp32" in capsys.readouterr().err


def test_missing_or_mismatched_source_is_refused(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build("--model", str(tmp_path / "nope.onnx")) != 0
    assert "is not an ONNX file" in capsys.readouterr().err

    tiny.write_bytes(
        tiny.read_bytes() + b"\0"
    )  # the file no longer matches its sidecar
    args = ["--model", str(tiny), "--backend", "onnxruntime", "--precision", "fp32"]
    assert _build(*args) != 0
    assert "does not match its sidecar" in capsys.readouterr().err


def test_bad_batch_arguments_are_refused(
    tiny: Path, capsys: pytest.CaptureFixture[str]
):
    assert _build("--model", str(tiny), "--max-batch", "8", "--opt-batch", "9") != 0
    assert "--opt-batch 9" in capsys.readouterr().err


def test_parity_failure_keeps_engine_as_rejected(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An optimiser that changed the graph's numbers must not pass parity."""
    import onnxruntime as ort

    real_session = ort.InferenceSession

    def corrupting_session(path: str, options: object = None, **kw: object) -> object:
        saved = getattr(options, "optimized_model_filepath", "")
        session = real_session(path, options, **kw)
        if saved:  # replace what the optimiser saved with a different model
            onnx.save(tiny_graph(bias=-2.0), saved)
        return session

    monkeypatch.setattr(ort, "InferenceSession", corrupting_session)
    out = tmp_path / "engines"
    code = _build(
        "--model", str(tiny), "--backend", "onnxruntime", "--precision", "fp32",
        "--out", str(out),
    )  # fmt: skip
    assert code != 0
    assert not (out / "tiny.ort.onnx").exists()
    rejected = out / "tiny.ort.onnx.rejected"
    assert rejected.exists()
    report = json.loads((out / "tiny.ort.onnx.rejected.json").read_text())["parity"]
    assert report["passed"] is False and report["max_abs_diff"] > 0.05


def test_compare_outputs_counts_flips_and_borderline() -> None:
    maps = np.zeros((4, 1, 2, 2), np.float32)
    ref_scores = np.array([0.10, 0.49, 0.90, 0.52], np.float32)
    scores = np.array([0.10, 0.51, 0.90, 0.45], np.float32)
    report = parity.compare_outputs(
        (maps, ref_scores), (maps, scores),
        tolerance=0.1, pixel_threshold=0.5, image_threshold=0.5,
    )  # fmt: skip
    assert report.borderline_flips == [1, 3] and report.flipped_tiles == []
    assert report.tile_decisions_agree == 2 and report.passed

    strict = parity.compare_outputs(
        (maps, ref_scores), (maps, scores),
        tolerance=0.01, pixel_threshold=0.5, image_threshold=0.5,
    )  # fmt: skip
    assert not strict.passed and "score differs" in strict.reason


def test_synthetic_tiles_are_fixed_and_real_tiles_need_the_folder(tmp_path: Path):
    a, where = parity.fixed_tiles(TILE, 6, data_root=tmp_path)
    b, _ = parity.fixed_tiles(TILE, 6, data_root=tmp_path)
    assert where == "synthetic" and a.shape == (6, TILE, TILE, 3)
    assert np.array_equal(a, b)


@pytest.mark.data
def test_real_rope_tiles_from_the_photographs() -> None:
    root = parity.default_data_root()
    if root is None:
        pytest.skip("../shared/data/mvtec3d-rope is absent")
    tiles, where = parity.fixed_tiles(64, 9, data_root=root)
    assert where == "real rope" and tiles.shape == (9, 64, 64, 3)
    assert tiles.mean() > 30  # rope, not the dark foam
