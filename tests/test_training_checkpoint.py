"""Reading checkpoints: anything that is not one fails with a DataError and a hint
that says what a run folder is, never with torch's unpickling traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rope_inspect.errors import DataError, RopeInspectError
from rope_inspect.model.commands import export_command
from rope_inspect.training.checkpoint import (
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
)


def _random_bytes(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 40)
    return path


def _onnx_like(path: Path) -> Path:
    path.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(100))
    return path


@pytest.mark.parametrize("make", [_random_bytes, _onnx_like])
def test_a_file_that_is_not_a_checkpoint_is_refused_with_a_hint(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "model.onnx")
    with pytest.raises(DataError) as caught:
        read_checkpoint(path)
    assert "is not a training checkpoint" in caught.value.message
    assert "run folder made by `rope-inspect train`" in caught.value.hint
    assert "exported engine" in caught.value.hint  # an .onnx: says what it is


def test_truncated_and_foreign_checkpoints(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"step": 1}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(DataError, match="not a training checkpoint"):
        read_checkpoint(truncated)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(DataError, match="holds a Tensor"):
        read_checkpoint(tensor)
    with pytest.raises(DataError, match="lacks"):
        load_checkpoint(good)
    with pytest.raises(DataError) as caught:
        resolve_checkpoint(tmp_path / "nothing-here")
    assert "best.pt and last.pt" in caught.value.hint


def test_export_of_a_corrupt_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    bad = _random_bytes(tmp_path / "bad.pt")
    args = argparse.Namespace(
        run=bad, out=tmp_path / "m.onnx", opset=18, tile=None, tile_height=None
    )
    with pytest.raises(RopeInspectError) as caught:
        export_command(args)
    assert caught.value.hint
    assert not (tmp_path / "m.onnx").exists()
