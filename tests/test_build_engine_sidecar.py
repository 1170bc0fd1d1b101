"""Engine sidecars and engine paths that cannot be used: messages that say which field
is wrong (no pydantic help links), a hint that fits the mismatch, and an engine path
that is a folder called a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.engine.sidecar import (
    Sidecar,
    check_sidecar,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from rope_inspect.errors import EngineError, EngineMismatch


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not really a graph")
    write_sidecar(
        path,
        Sidecar(
            format="onnx",
            engine_sha256=file_sha256(path),
            model_sha256="3" * 64,
            architecture={},
            tile=128,
        ),
    )
    return path


def test_malformed_sidecar_names_the_fields(engine: Path) -> None:
    data = json.loads(sidecar_path(engine).read_text())
    data["tile"] = -4
    del data["format"]
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(EngineMismatch) as caught:
        read_sidecar(engine)
    message = caught.value.message
    assert "tile: Input should be greater than 0 (got -4)" in message
    assert "format: Field required" in message
    assert "pydantic" not in message and "http" not in message

    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineMismatch) as caught:
        read_sidecar(engine)
    assert "is malformed" in caught.value.message
    assert "http" not in caught.value.message


def test_channel_order_mismatch_hint_is_about_channels(engine: Path) -> None:
    sidecar = read_sidecar(engine).model_copy(update={"channel_order": "BGR"})
    with pytest.raises(EngineMismatch) as caught:
        check_sidecar(engine, sidecar, tile=128, channel_order="RGB")
    assert "expects BGR, pipeline gives RGB" in caught.value.message
    hint = caught.value.hint
    assert "re-export" in hint and "take RGB tiles" in hint
    assert "tile 128" not in hint and "tiling.tile" not in hint


def test_engine_path_that_is_a_folder(tmp_path: Path) -> None:
    cfg = EngineConfig(backend="onnxruntime", model=tmp_path)
    with pytest.raises(EngineError) as caught:
        load_engine(cfg, 128)
    assert "is a folder" in caught.value.message
    assert "does not exist" not in caught.value.message
