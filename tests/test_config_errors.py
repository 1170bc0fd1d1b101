"""Config errors name the file, the line, the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.decision.calibration import load_calibration
from rope_inspect.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_inspect_config(path)
    return str(info.value)


@pytest.mark.parametrize("name", ["demo", "mvtec3d-rope", "line.example"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_inspect_config(ROOT / "configs" / f"{name}.yaml")
    assert isinstance(cfg, InspectConfig)


@pytest.mark.parametrize("name", ["demo", "mvtec3d-rope"])
def test_shipped_calibrations_validate(name: str) -> None:
    assert load_calibration(ROOT / "calibration" / f"{name}.yaml").line == name


def test_unknown_key_names_line_and_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n  widht: 100\n")
    message = _error(path)
    assert f"{path}:3: unknown key 'source.widht' (value 100)" in message
    assert "allowed keys: defects_per_m, fps, height, kind" in message


def test_unknown_top_level_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\ncamera:\n  fps: 3\n")
    message = _error(path)
    assert f"{path}:3: unknown key 'camera'" in message
    assert "allowed keys: calibration, decision, engine" in message


def test_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\nengine:\n  threads: many\n")
    message = _error(path)
    assert f"{path}:4: key 'engine.threads' = 'many'" in message
    assert "valid integer" in message


def test_out_of_bounds_value_says_the_bound(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n  fps: 0\nring:\n  slots: 1\n")
    message = _error(path)
    assert f"{path}:3: key 'source.fps' = 0: Input should be greater than 0" in message
    assert f"{path}:5: key 'ring.slots' = 1" in message
    assert "greater than or equal to 2" in message
    assert "2 error(s)" in message


def test_bad_discriminator_lists_the_kinds(tmp_path: Path) -> None:
    path = _write(tmp_path, "line:\n  name: a\nsource:\n  kind: usb\n")
    message = _error(path)
    assert f"{path}:4: key 'source.kind' = 'usb'" in message
    assert "'synthetic', 'replay', 'genicam'" in message


def test_missing_discriminator(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  fps: 3\n")
    assert "key 'source.kind'" in _error(path)


def test_error_inside_a_list_of_outputs(tmp_path: Path) -> None:
    text = (
        "source:\n  kind: synthetic\nreject:\n  outputs:\n    - kind: log\n"
        "    - kind: modbus\n      port: 0\n      bogus: 1\n"
    )
    path = _write(tmp_path, text)
    message = _error(path)
    assert f"{path}:7: key 'reject.outputs.1.port' = 0" in message
    assert f"{path}:8: unknown key 'reject.outputs.1.bogus'" in message
    assert "allowed keys: coil, host, kind, port, timeout_s, unit" in message


def test_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "nothing.yaml")
    assert "does not exist" in message
    assert "hint:" in message


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "source:\n  kind: synthetic\n   fps: [1\n")
    message = _error(path)
    assert "is not valid YAML" in message
    assert "line 3" in message


def test_a_list_is_not_a_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "- source\n- engine\n")
    assert "must hold a mapping" in _error(path)
