"""SIGTERM to a real `rope-inspect run` under load: it drains, writes every pending
defect, logs the rejects that cannot fire any more, exits 0 within the stop timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from notify_helpers import wait_for_notify
from test_service_daemon import make_config

from rope_inspect.storage.index import DefectIndex

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 15.0


def test_sigterm_under_load_drains_and_exits_cleanly(
    tmp_path: Path, tiny_model: Path
) -> None:
    # threshold 0: the whole rope envelope is one open defect, written at shutdown;
    # the actuator 40 m away: its reject is still pending when the daemon stops
    cfg = make_config(
        tmp_path,
        tiny_model,
        threshold=0.0,
        source={"realtime": False},
        reject={"actuator_distance_m": 40.0},
        service={"stop_timeout_s": STOP_TIMEOUT_S},
    )
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    report = tmp_path / "report.json"
    folder = tempfile.mkdtemp(prefix="ri-", dir="/tmp")
    notify_path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    command = [sys.executable, "-m", "rope_inspect", "--log-format", "json", "run"]
    command += ["--config", str(config), "--report", str(report), "--no-status"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert wait_for_notify(sock, "READY=1", 120.0), "no READY=1 from the daemon"
        time.sleep(2.0)  # frames pour in flat out: the ring overflows, work piles up
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert wait_for_notify(sock, "STOPPING=1", 10.0)
        out, err = process.communicate(timeout=STOP_TIMEOUT_S + 20)
        took = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        sock.close()
        os.unlink(notify_path)
        os.rmdir(folder)

    assert process.returncode == 0, err.decode()[-3000:]
    assert took < STOP_TIMEOUT_S + 5
    summary = json.loads(report.read_text())
    assert summary["stopped_by"] == "SIGTERM"
    assert summary["accounting_ok"], summary["accounting"]
    assert summary["frames"]["inspected"] >= 1
    assert summary["shutdown"]["within_stop_timeout"]
    assert summary["store"]["unwritten"] == []
    assert summary["defects"] >= 1
    assert summary["stored"] == summary["defects"]
    assert summary["rejects"]["not_fired"] == summary["defects"]
    assert b"reject_not_fired" in err
    assert b"rope-inspect run:" in out

    store = Path(cfg.store.path)
    index = DefectIndex(store / "index.sqlite")
    records = list(index.iter_records())
    index.close()
    assert len(records) == summary["defects"]
    assert {r.reject_state for r in records} == {"not_fired"}
    on_disk = {p.relative_to(store).as_posix() for p in store.rglob("*.json")}
    listed = {r.json for r in records}
    assert listed <= on_disk
    assert not [p for p in store.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def test_stop_with_a_hung_engine_call_still_ends_within_the_stop_timeout(
    tmp_path: Path, tiny_model: Path
) -> None:
    from test_service_faults import HangingEngine

    from rope_inspect.engine.loader import load_engine
    from rope_inspect.service.daemon import Daemon

    cfg = make_config(tmp_path, tiny_model, service={"stop_timeout_s": 3.0})
    engine = HangingEngine(load_engine(cfg.engine, cfg.tile_shape), hang_at=2)
    daemon = Daemon(cfg, engine=engine)
    runner = threading.Thread(target=daemon.run, daemon=True)
    try:
        runner.start()
        assert engine.hanging.wait(60.0)
        stop_asked = time.monotonic()
        daemon.request_stop("test")
        runner.join(30.0)
        took = time.monotonic() - stop_asked
    finally:
        engine.release.set()
    assert not runner.is_alive()
    assert took < 3.0 + 2.0
    summary = daemon.summary()
    shutdown = summary["shutdown"]
    assert shutdown["within_stop_timeout"]
    assert not shutdown["inspector_drained"]
    assert not summary["clean_exit"]
    assert summary["store"]["unwritten"] == []
