"""`rope-inspect run`: bounded runs from the command line, the report, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import structlog
import yaml
from test_service_daemon import make_config

from rope_inspect.cli import main
from rope_inspect.service.report import format_summary, status_text


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`main` binds logging to this test's captured stderr; undo it afterwards."""
    yield
    structlog.reset_defaults()


def _config_file(tmp_path: Path, model: Path, **changes) -> Path:
    cfg = make_config(tmp_path, model, **changes)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_run_max_frames_prints_summary_and_writes_report(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, tiny_model)
    report = tmp_path / "out" / "report.json"
    code = main(
        ["run", "--config", str(config), "--max-frames", "4", "--report", str(report)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "stopped by max_frames" in out
    assert "ground truth (synthetic line" in out
    summary = json.loads(report.read_text())
    assert summary["frames"]["inspected"] >= 4
    assert summary["accounting_ok"]
    assert summary["config"] == str(config)


def test_run_duration_stops_on_time(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, tiny_model)
    assert main(["run", "--config", str(config), "--duration", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "stopped by duration" in out


def test_run_without_the_engine_file_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, tmp_path / "missing.onnx")
    code = main(["run", "--config", str(config), "--max-frames", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing.onnx does not exist" in err
    assert "rope-inspect export" in err
    assert not (tmp_path / "store" / ".lock").exists() or code == 2


def test_status_line_shows_rates_drops_defects_and_faults() -> None:
    snap = {
        "frames_acquired": 120,
        "frames_inspected": 100,
        "frames_dropped": 20,
        "fps": 19.5,
        "tiles": 1200,
        "defects": 3,
        "latency_ms": {"total": 41.2},
        "frames_quality_skipped": 2,
        "fault_conditions": {"camera_lost": "unplugged"},
        "store_alarm": 1,
        "rejects_failed": 2,
    }
    text = status_text(snap)
    for part in (
        "frames 120",
        "fps 19.5",
        "drops 20",
        "tiles/frame 12.0",
        "defects 3",
        "latency 41 ms",
        "not inspected 2",
        "FAULT camera_lost",
        "STORE ALARM",
        "REJECTS FAILED 2",
    ):
        assert part in text


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_stop_signals_ask_the_daemon_to_stop_instead_of_killing_it(name: str) -> None:
    """SIGHUP (terminal closed) drains like SIGTERM; by default it kills at once."""
    script = (
        "import os, signal\n"
        "from rope_inspect.service.commands import _StopOnSignal\n"
        "asked = []\n"
        "with _StopOnSignal(asked.append):\n"
        f"    os.kill(os.getpid(), signal.{name})\n"
        "print('asked', asked)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"asked ['{name}']")


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--duration", "nan", "finite number above 0"),
        ("--duration", "inf", "finite number above 0"),
        ("--duration", "0", "finite number above 0"),
        ("--duration", "-3", "finite number above 0"),
        ("--duration", "soon", "is not a number"),
        ("--max-frames", "-1", "must be 1 or more"),
        ("--max-frames", "0", "must be 1 or more"),
        ("--max-frames", "2.5", "is not a whole number"),
    ],
)
def test_run_refuses_limits_that_cannot_end_a_run(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["run", flag, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and says in err


def test_max_frames_counts_inspected_frames_exactly(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rendered flat out: the ring is full when the limit is reached
    config = _config_file(tmp_path, tiny_model, source={"realtime": False})
    report = tmp_path / "report.json"
    args = ["run", "--config", str(config), "--max-frames", "5"]
    assert main([*args, "--report", str(report)]) == 0
    summary = json.loads(report.read_text())
    frames = summary["frames"]
    assert frames["inspected"] == 5
    assert frames["left_in_ring"] >= 1  # counted, not inspected after the stop
    assert summary["accounting_ok"], summary["accounting"]
    assert summary["stopped_by"] == "max_frames"


def test_summary_text_shows_source_skips_and_unwritten_defects() -> None:
    summary = {
        "frames": {"acquired": 3, "inspected": 3, "skipped_by_source": 4},
        "source_counters": {"wrong_size": 3, "unreadable": 1},
        "store": {"written": 5, "dropped": 2, "unwritten": ["a", "b", "c"]},
    }
    text = format_summary(summary)
    assert "skipped by the source 4 (unreadable 1, wrong_size 3)" in text
    assert "store: 5 written, 2 dropped (memory queue full), 3 not written" in text


def test_a_run_that_inspected_nothing_fails_and_says_why_last(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):  # the lens cap is on
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.zeros((224, 256, 3), np.uint8))
    replay = {"kind": "replay", "path": folder, "realtime": False, "loop": False}
    config = _config_file(tmp_path, tiny_model, source=replay)
    report = tmp_path / "report.json"

    code = main(["run", "--config", str(config), "--report", str(report)])

    out = capsys.readouterr().out
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last == (
        "rope-inspect run: FAILED: 0 of 6 frames inspected: "
        "all 6 failed the image check (black)"
    )
    summary = json.loads(report.read_text())
    assert summary["failure"] == last.removeprefix("rope-inspect run: FAILED: ")
    assert not summary["clean_exit"]
