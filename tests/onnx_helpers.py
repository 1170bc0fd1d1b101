"""Small ONNX engines written for the tests: the engine's IO contract and a sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rope_inspect.engine.sidecar import Sidecar, file_sha256, write_sidecar


def tile_model(
    nodes: list[onnx.NodeProto], arrays: dict[str, np.ndarray], tile: int, name: str
) -> onnx.ModelProto:
    """`nodes` behind the engine's IO: uint8 `tiles` N x tile x tile x 3 in,
    float `anomaly_map` N x 1 x tile x tile and `score` N out (opset 18)."""
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        name,
        [value("tiles", TensorProto.UINT8, ["n", tile, tile, 3])],
        [
            value("anomaly_map", TensorProto.FLOAT, ["n", 1, tile, tile]),
            value("score", TensorProto.FLOAT, ["n"]),
        ],
        initializer=[numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def save_engine(
    model: onnx.ModelProto, path: Path, tile: int, label: str, **fields: Any
) -> Path:
    """Write `model` to `path` with a sidecar that matches it (test weights)."""
    onnx.save(model, str(path))
    sidecar = Sidecar(
        format="onnx",
        engine_sha256=file_sha256(path),
        model_sha256=str(fields.pop("model_sha256", "0" * 64)),
        architecture={"test": label},
        tile=tile,
        **fields,
    )
    write_sidecar(path, sidecar)
    return path
