"""The YAML loader refuses what a config must not contain, naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rope_inspect.config import load_inspect_config
from rope_inspect.errors import ConfigError


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "line.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "source:\n  kind: synthetic\nring:\n  slots: 3\nring:\n  slots: 9\n"
    )
    with pytest.raises(ConfigError) as err:
        load_inspect_config(path)
    assert f"{path}:5" in str(err.value)
    assert "first at line 3" in str(err.value)


def test_nested_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n  fps: 5\n  fps: 50\n")
    with pytest.raises(ConfigError, match="'fps' appears twice"):
        load_inspect_config(path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_inspect_config(path)


def test_overlap_must_be_smaller_than_tile(tmp_path: Path) -> None:
    text = "source:\n  kind: synthetic\ntiling:\n  tile: 128\n  overlap: 128\n"
    with pytest.raises(ConfigError, match="overlap 128 must be smaller than the tile"):
        load_inspect_config(_write(tmp_path, text))
    across = "source:\n  kind: synthetic\ntiling:\n  tile_across: 64\n  overlap: 64\n"
    with pytest.raises(ConfigError, match="smaller than the tile side 64"):
        load_inspect_config(_write(tmp_path, across))


def test_tile_across_gives_the_engine_shape_for_the_rope_axis(tmp_path: Path) -> None:
    text = "source:\n  kind: synthetic\ntiling:\n  tile: 128\n  tile_across: 224\n"
    cfg = load_inspect_config(_write(tmp_path, text))
    assert cfg.tile_shape == (224, 128)  # horizontal rope: tall tiles
    vertical = cfg.model_copy(
        update={"line": cfg.line.model_copy(update={"rope_axis": "vertical"})}
    )
    assert vertical.tile_shape == (128, 224)
    assert load_inspect_config(
        _write(tmp_path, "source:\n  kind: synthetic\n")
    ).tile_shape == (128, 128)


def test_nan_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n  fps: .nan\n")
    with pytest.raises(ConfigError, match=r"line.yaml:3: key 'source.fps'"):
        load_inspect_config(path)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: replay\n")
    with pytest.raises(ConfigError, match=r"required key 'source\.path' is missing"):
        load_inspect_config(path)
