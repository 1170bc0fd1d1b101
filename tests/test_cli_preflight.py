"""`validate-config` fails exactly where `run` would, and `run` fails before it opens
anything: missing files, an engine that does not match, a calibration of another
line, a metrics port in use, an unwritable `--report`."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from test_service_daemon import make_config

from rope_inspect.cli import main
from rope_inspect.engine.sidecar import sidecar_path


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` binds logging to this test's captured stderr; undo it afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _write(tmp_path: Path, model: Path, **changes: Any) -> Path:
    cfg = make_config(tmp_path, model, **changes)
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def _tampered_model(tmp_path: Path, model: Path) -> Path:
    copy = tmp_path / "tampered.onnx"
    shutil.copy(model, copy)
    shutil.copy(sidecar_path(model), sidecar_path(copy))
    with copy.open("ab") as file:
        file.write(b"\0")  # the file no longer has the hash its sidecar names
    return copy


def _other_line(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "other.yaml"
    path.write_text(
        "line: otherline\npixel_threshold: 0.5\nimage_threshold: 0.5\nmm_per_px: 0.2\n"
    )
    return {"calibration": path}


BROKEN: dict[str, tuple[Callable[[Path, Path, int], dict[str, Any]], str]] = {
    "model missing": (
        lambda t, m, p: {"engine": {"model": t / "none.onnx"}},
        "none.onnx does not exist",
    ),
    "calibration missing": (
        lambda t, m, p: {"calibration": t / "none.yaml"},
        "none.yaml does not exist",
    ),
    "replay folder missing": (
        lambda t, m, p: {"source": {"kind": "replay", "path": t / "frames"}},
        "frames does not exist",
    ),
    "cti missing": (
        lambda t, m, p: {"source": {"kind": "genicam", "cti": t / "vendor.cti"}},
        "vendor.cti not found",
    ),
    "tile mismatch": (lambda t, m, p: {"tiling": {"tile": 64}}, "64"),
    "sidecar hash mismatch": (
        lambda t, m, p: {"engine": {"model": _tampered_model(t, m)}},
        "tampered.onnx",
    ),
    "calibration of another line": (
        lambda t, m, p: _other_line(t),
        "is for line 'otherline', this config is line 'demo'",
    ),
    "metrics port in use": (
        lambda t, m, p: {"metrics": {"port": p}},
        "cannot serve metrics on 127.0.0.1:",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validate_config_and_run_refuse_the_same_config_the_same_way(
    case: str,
    tmp_path: Path,
    tiny_model: Path,
    listening_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    change, says = BROKEN[case]
    changes = change(tmp_path, tiny_model, listening_port)
    config = _write(tmp_path, tiny_model, **changes)

    validate_code = main(["validate-config", str(config)])
    validate = capsys.readouterr()
    run_code = main(["run", "--config", str(config), "--max-frames", "1"])
    run = capsys.readouterr()

    assert validate_code == run_code == 2
    assert not validate.out.startswith("OK")
    prefix = "rope-inspect validate-config: error: "
    (error,) = [line for line in validate.err.splitlines() if line.startswith(prefix)]
    assert says in error
    assert error.replace("validate-config", "run") in run.err
    assert not (tmp_path / "store").exists()  # run opened nothing
    assert "daemon_ready" not in run.err + run.out


def test_run_checks_the_report_path_before_it_starts(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, tiny_model)
    (tmp_path / "afile").write_text("x")
    report = tmp_path / "afile" / "report.json"

    code = main(["run", "--config", str(config), "--report", str(report)])

    err = capsys.readouterr().err
    assert code == 2
    assert "--report" in err and "is not a folder" in err
    assert not (tmp_path / "store").exists()


def test_a_calibration_of_another_engine_is_warned_about(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, tiny_model)
    calibration = tmp_path / "calibration.yaml"
    calibration.write_text(calibration.read_text() + f"engine_sha256: {'ab' * 32}\n")

    assert main(["validate-config", str(config)]) == 0
    validate = capsys.readouterr()
    assert "WARNING: calibration" in validate.out
    assert "measured with engine abababababab" in validate.out

    assert main(["run", "--config", str(config), "--max-frames", "1"]) == 0
    run = capsys.readouterr()
    assert "calibration_engine_mismatch" in run.err + run.out
    assert "  WARNING: calibration" in run.out
