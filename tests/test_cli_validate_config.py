"""`rope-inspect validate-config`: OK with a summary, or the error with file:line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from rope_inspect.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` binds logging to this test's captured stderr; undo it afterwards."""
    yield
    structlog.reset_defaults()


def test_validate_config_prints_ok_and_a_summary(capsys) -> None:
    code = main(["validate-config", str(ROOT / "configs" / "demo.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("OK ")
    assert "synthetic rope 640x224 at 10 fps" in out
    assert "engine:      onnxruntime engines/demo.onnx" in out


def test_validate_config_fails_on_files_missing_on_this_machine(capsys) -> None:
    code = main(["validate-config", str(ROOT / "configs" / "line.example.yaml")])
    captured = capsys.readouterr()
    assert code == 2
    assert "/etc/rope-inspect/calibration/line1.yaml does not exist" in captured.err
    assert not captured.out.startswith("OK")


def test_validate_config_syntax_only_checks_the_file_alone(capsys) -> None:
    path = ROOT / "configs" / "line.example.yaml"
    code = main(["validate-config", "--syntax-only", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"OK {path} (syntax only")
    assert "modbus 192.168.10.20:502 unit 1 coil 16" in out


def test_validate_config_bad_file_exits_2_with_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source:\n  kind: replay\n  path: x\n  fps: -1\n")
    code = main(["validate-config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:4: key 'source.fps' = -1" in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_validate_config_calibration_error_is_reported(tmp_path: Path, capsys) -> None:
    calibration = tmp_path / "calib.yaml"
    calibration.write_text("line: demo\npixel_threshold: 2\nimage_threshold: 0.5\n")
    path = tmp_path / "line.yaml"
    path.write_text(f"source:\n  kind: synthetic\ncalibration: {calibration}\n")
    code = main(["validate-config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{calibration}:2: key 'pixel_threshold' = 2" in err
    assert "key 'mm_per_px'" in err


def test_console_entry_point_runs(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source:\n  kind: camera\n")
    result = subprocess.run(
        [sys.executable, "-m", "rope_inspect", "validate-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "key 'source.kind' = 'camera'" in result.stderr
