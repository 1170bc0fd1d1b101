"""The daemon's decision stage: crops sized from the store config, and what became of
each reject (fired, late, failed, not fired) reaching the store, the fault output,
the metrics and the summary."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_service_daemon import make_config, spot_engine

from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.report import format_summary
from rope_inspect.storage.index import DefectIndex


def _records(store: Path) -> list:
    index = DefectIndex(store / "index.sqlite")
    try:
        return list(index.iter_records())
    finally:
        index.close()


def test_crops_are_sized_by_store_crop_min_px(tmp_path: Path, tiny_model: Path) -> None:
    cfg = make_config(
        tmp_path, tiny_model, store={"crop_min_px": 200, "crop_margin_px": 0}
    )
    summary = Daemon(cfg, engine=spot_engine(cfg)).run(RunLimits(max_frames=4))

    records = _records(cfg.store.path)
    assert summary["defects"] >= 1 and len(records) == summary["stored"]
    for record in records:
        x0, y0, x1, y1 = record.crop_box
        assert (x1 - x0, y1 - y0) == (200, 200)  # the 20 px spot, widened to 200


def _dead_port() -> int:
    """A localhost TCP port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_reject_whose_plc_is_unreachable_is_failed_raises_the_fault(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plc = {"kind": "modbus", "host": "127.0.0.1", "port": _dead_port()}
    plc["timeout_s"] = 0.2
    cfg = make_config(
        tmp_path,
        tiny_model,
        reject={
            "actuator_distance_m": 0.01,
            "outputs": [plc],
            "fault_outputs": [{"kind": "log"}, plc],  # the fault PLC is down too
        },
    )
    daemon = Daemon(cfg, engine=spot_engine(cfg))
    summary = daemon.run(RunLimits(max_frames=12))

    rejects = summary["rejects"]
    assert rejects["failed"] >= 1
    assert rejects["fired"] == 0
    states = [r.reject_state for r in _records(cfg.store.path)]
    assert "failed" in states
    assert set(states) <= {"failed", "not_fired"}  # never "fired"
    assert states.count("failed") == rejects["failed"]
    raised = [h for h in summary["faults"]["history"] if h[0] == "reject_output"]
    assert raised and raised[0][1] is True
    assert raised[0][2].startswith("reject output failed")
    assert summary["faults"]["output_errors"] >= 2  # at start and on the raise
    assert daemon.snapshot()["rejects_failed"] == rejects["failed"]
    assert b"rope_inspect_rejects_failed_total" in daemon.metrics.render()
    text = format_summary(summary)
    assert f"failed {rejects['failed']}" in text
    assert "NOT MARKED" in text
    logged = capsys.readouterr()
    assert "fault_output_failed_too" in logged.out + logged.err
    assert "output_unreachable_at_start" in logged.out + logged.err
    unreachable = [w for w in summary["warnings"] if "unreachable at start" in w]
    assert len(unreachable) == 2  # the reject and the fault coil
