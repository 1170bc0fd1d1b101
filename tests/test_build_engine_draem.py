"""build-engine's CPU-testable steps on a real export: a tiny DraemModel, switches on.

The exported graph holds what the toy graphs do not (attention, ASPP, Resize, the
score pooling): the ONNX Runtime path must optimise it portably and pass parity, and
the TensorRT 11 FP16 conversion must give a valid mixed-precision graph that ONNX
Runtime runs close to the FP32 one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rope_inspect.cli import main
from rope_inspect.engine.sidecar import read_sidecar
from rope_inspect.engine.tensorrt_build import mixed_precision_onnx

pytestmark = pytest.mark.slow
TILE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import export_onnx

    torch.manual_seed(0)
    cfg = ModelConfig(
        recon_width=4, seg_width=4, depth=2, transformer_heads=1,
        transformer_layers=1, skip_connections=True, dual_attention=True,
        transformer=True, aspp=True,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("draem") / "draem.onnx"
    export_onnx(DraemModel(cfg).eval(), path, tile=TILE)
    return path


def test_onnxruntime_build_of_a_real_export(exported: Path, tmp_path: Path) -> None:
    code = main(
        ["--log-level", "warning", "build-engine", "--model", str(exported),
         "--backend", "onnxruntime", "--precision", "fp32", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    sidecar = read_sidecar(tmp_path / "draem.ort.onnx")
    assert (sidecar.model_extra or {})["parity"]["passed"] is True
    assert sidecar.architecture == read_sidecar(exported).architecture


def test_fp16_conversion_of_a_real_export_runs_close(
    exported: Path, tmp_path: Path
) -> None:
    converted = tmp_path / "fp16.onnx"
    kept = mixed_precision_onnx(exported, converted)
    kinds = {name.rsplit("[", 1)[1].rstrip("]") for name in kept}
    assert {"LayerNormalization", "Softmax", "Resize"} <= kinds

    tiles = np.random.default_rng(4).integers(0, 256, (6, TILE, TILE, 3), np.uint8)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    cpu = ["CPUExecutionProvider"]
    want = ort.InferenceSession(str(exported), providers=cpu).run(
        None, {"tiles": tiles}
    )
    got = ort.InferenceSession(str(converted), options, providers=cpu).run(
        None, {"tiles": tiles}
    )
    assert np.abs(want[0] - got[0]).max() < 5e-3
    assert np.abs(want[1] - got[1]).max() < 5e-3
