"""`rope-inspect export --out`: an unusable output path fails before the checkpoint is
loaded, as a ConfigError with a hint (not an IsADirectoryError after the export)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rope_inspect.errors import ConfigError
from rope_inspect.model import export as export_module
from rope_inspect.model.commands import export_command


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(run: Path) -> None:
        raise AssertionError("the checkpoint was loaded before --out was checked")

    monkeypatch.setattr(export_module, "load_export_source", refuse)


@pytest.mark.usefixtures("no_loading")
def test_out_naming_a_folder_is_refused_first(tmp_path: Path) -> None:
    folder = tmp_path / "exists_dir"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me")
    args = argparse.Namespace(
        run=tmp_path / "run", out=folder, opset=18, tile=None, tile_height=None
    )
    with pytest.raises(ConfigError, match="is a folder") as caught:
        export_command(args)
    assert "model.onnx" in caught.value.hint
    assert (folder / "important.txt").read_text() == "keep me"


@pytest.mark.usefixtures("no_loading")
def test_out_under_a_file_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    args = argparse.Namespace(
        run=tmp_path,
        out=tmp_path / "afile" / "m.onnx",
        opset=18,
        tile=None,
        tile_height=None,
    )
    with pytest.raises(ConfigError, match="not a folder"):
        export_command(args)
