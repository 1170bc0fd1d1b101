"""Faults injected into a running daemon: camera lost, malformed frames, engine NaN and
errors, a hung engine call (watchdog and /healthz). Each run is real and bounded."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from notify_helpers import wait_for_notify
from test_service_daemon import make_config, other_threads, spot_engine

from rope_inspect.acquisition.base import open_source
from rope_inspect.engine.loader import load_engine
from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import (
    FaultyEngine,
    FlakySource,
    MalformedFrames,
)
from rope_inspect.service.notify import SystemdNotifier
from rope_inspect.storage import files


def _history(summary: dict, condition: str) -> list[bool]:
    return [
        active for name, active, _ in summary["faults"]["history"] if name == condition
    ]


def test_camera_lost_mid_run_raises_fault_reconnects_and_resumes(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    flaky = FlakySource(open_source(cfg.source, cfg.line), outages=[(4, 1.0)])
    before = set(threading.enumerate())

    summary = Daemon(cfg, source=flaky).run(RunLimits(max_frames=10))

    assert flaky.lost_reads >= 1 and flaky.failed_opens >= 1
    assert summary["camera"]["losses"] == 1
    assert summary["camera"]["reconnects"] == 1
    assert _history(summary, "camera_lost") == [True, False]
    assert summary["faults"]["raised"] == 1
    assert flaky.frames > 4  # frames came again after the outage...
    assert summary["frames"]["inspected"] >= 10  # ...and were inspected
    assert summary["accounting_ok"]
    assert summary["clean_exit"]
    assert other_threads(before) == []


def test_malformed_frames_are_counted_and_skipped_with_an_alarm(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    bad = {2: "black", 3: "black", 6: "saturated"}
    source = MalformedFrames(open_source(cfg.source, cfg.line), bad)
    engine = FaultyEngine(load_engine(cfg.engine, cfg.tile_shape))

    summary = Daemon(cfg, source=source, engine=engine, lossless=True).run(
        RunLimits(max_frames=9)
    )

    frames = summary["frames"]
    assert frames["dropped"] == 0
    assert frames["quality_skipped"] == 3
    assert summary["image_quality_alarms"] == 2  # the black run, then the saturated one
    assert _history(summary, "image_quality") == [True, False, True, False]
    assert engine.calls == frames["inspected"]  # skipped frames never reach the engine
    assert frames["taken"] == frames["inspected"] + 3
    assert summary["defects"] == 0
    assert summary["accounting_ok"]


def test_engine_nan_and_errors_leave_frames_uninspected_with_a_fault(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    engine = FaultyEngine(
        load_engine(cfg.engine, cfg.tile_shape), nan_calls={2, 3}, error_calls={6}
    )

    summary = Daemon(cfg, engine=engine, lossless=True).run(RunLimits(max_frames=9))

    frames = summary["frames"]
    assert frames["uninspected"] == 3
    assert summary["engine_errors"] == 3
    assert frames["inspected"] == frames["taken"] - 3
    assert _history(summary, "engine") == [True, False, True, False]
    assert summary["faults"]["raised"] == 2
    assert summary["accounting_ok"]


class HangingEngine:
    """Blocks inside `infer` on call `hang_at` until released (a stuck GPU call)."""

    def __init__(self, inner, hang_at: int) -> None:
        self.inner, self.name, self.sidecar = inner, "hanging", inner.sidecar
        self.hang_at, self.calls = hang_at, 0
        self.hanging, self.release = threading.Event(), threading.Event()

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        if self.calls == self.hang_at:
            self.hanging.set()
            self.release.wait(30.0)
        return self.inner.infer(tiles)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="ri-", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def _messages(sock: socket.socket, seconds: float) -> list[str]:
    """Every notify message received within `seconds`."""
    deadline = time.monotonic() + seconds
    received = []
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            received.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return received


def _healthz(address: tuple[str, int]) -> tuple[int, dict]:
    url = f"http://{address[0]}:{address[1]}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_hung_engine_stops_watchdog_pings_and_fails_healthz(
    tmp_path: Path, tiny_model: Path, notify_socket
) -> None:
    sock, path = notify_socket
    cfg = make_config(tmp_path, tiny_model, metrics={"stuck_after_s": 0.6})
    engine = HangingEngine(load_engine(cfg.engine, cfg.tile_shape), hang_at=3)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    daemon = Daemon(cfg, engine=engine, notifier=notifier)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert wait_for_notify(sock, "READY=1", 60.0)
        assert daemon.parts is not None  # READY only once camera and engine are open
        assert wait_for_notify(sock, "WATCHDOG=1", 5.0)
        assert engine.hanging.wait(30.0)
        time.sleep(1.0)  # past stuck_after_s: the inspection stage is stuck
        _messages(sock, 0.05)  # pings sent before it counted as stuck
        assert not any("WATCHDOG=1" in m for m in _messages(sock, 0.8))
        code, report = _healthz(daemon.metrics.address)
        assert code == 503
        assert list(report["stuck"]) == ["inspection"]

        engine.release.set()
        assert wait_for_notify(sock, "WATCHDOG=1", 5.0)
        assert _healthz(daemon.metrics.address)[0] == 200
    finally:
        engine.release.set()
        daemon.request_stop("test")
        runner.join(30.0)
    assert not runner.is_alive()
    assert daemon.watchdog.withheld >= 1


def _wait(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_disk_full_keeps_inspecting_and_rejecting_then_writes_the_backlog(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = files.write_atomic
    disk = {"full": True}

    def write_atomic(path: Path, data: bytes, sync: bool = True) -> None:
        if disk["full"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data, sync)

    monkeypatch.setattr(files, "write_atomic", write_atomic)
    cfg = make_config(
        tmp_path,
        tiny_model,
        reject={"actuator_distance_m": 0.01},
        store={"retry_backoff_s": (0.02, 0.1)},
    )
    daemon = Daemon(cfg, engine=spot_engine(cfg, every=2))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        _wait(lambda: daemon.snapshot().get("store_alarm") == 1)
        _wait(lambda: daemon.snapshot().get("rejects_fired", 0) >= 2)
        during = daemon.snapshot()
        assert during["store_pending"] >= 1
        assert during["store_written"] == 0
        inspected = during["frames_inspected"]
        _wait(lambda: daemon.snapshot()["frames_inspected"] > inspected + 2)

        disk["full"] = False
        _wait(lambda: daemon.snapshot()["store_alarm"] == 0)
    finally:
        daemon.request_stop("test")
        runner.join(60.0)
    summary = daemon.summary()
    assert summary["stored"] == summary["defects"] >= 2
    assert summary["store"]["unwritten"] == []
    assert summary["accounting_ok"]


def test_frames_the_source_refuses_raise_the_image_quality_alarm(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    source = MalformedFrames(
        open_source(cfg.source, cfg.line), {3: "truncated", 4: "truncated"}
    )

    summary = Daemon(cfg, source=source, lossless=True).run(RunLimits(max_frames=12))

    assert summary["frames"]["skipped_by_source"] == 2
    assert summary["image_quality_alarms"] == 1
    assert _history(summary, "source_frames") == [True, False]
    assert summary["frames"]["acquired"] == source.frames - 2
    assert summary["accounting_ok"]


def test_a_run_where_every_engine_call_failed_is_a_failure(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    engine = FaultyEngine(
        load_engine(cfg.engine, cfg.tile_shape), error_calls=range(10_000)
    )
    summary = Daemon(cfg, engine=engine).run(RunLimits(duration_s=1.0))

    frames = summary["frames"]
    assert frames["inspected"] == 0 and frames["uninspected"] >= 1
    assert summary["failure"].startswith("0 of ")
    assert (
        f"{frames['uninspected']} failed in the engine (injected: CUDA"
        in (summary["failure"])
    )
    assert not summary["clean_exit"]


def test_store_folder_deleted_mid_run_raises_the_store_alarm_and_fault(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    daemon = Daemon(cfg, engine=spot_engine(cfg, every=2))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 60.0
        while daemon.counters.get("defects_stored") < 1:
            assert time.monotonic() < deadline, "no defect stored"
            time.sleep(0.05)
        assert daemon.snapshot()["store_alarm"] == 0
        gone = tmp_path / "deleted-store"
        cfg.store.path.rename(gone)  # atomic, unlike rmtree racing the writer
        shutil.rmtree(gone, ignore_errors=True)  # SQLite may still write there
        while "store_folder" not in daemon.faults.conditions():
            assert time.monotonic() < deadline, "deleted store folder not noticed"
            time.sleep(0.05)
        assert daemon.snapshot()["store_alarm"] == 1
        assert daemon.snapshot()["fault_active"] == 1
    finally:
        daemon.request_stop("test")
        runner.join(60.0)
    summary = daemon.summary()
    (raised,) = [h for h in summary["faults"]["history"] if h[0] == "store_folder"]
    # the store's writer may have made the folder again before the check: "replaced"
    assert raised[1] is True
    assert "was removed" in raised[2] or "was replaced" in raised[2]
