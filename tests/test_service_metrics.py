"""The Prometheus endpoint serves the counters; /healthz flips to 503 when stuck."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from rope_inspect.service.metrics import Metrics
from rope_inspect.service.notify import HealthMonitor


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


@pytest.fixture
def served():
    clock = FakeClock()
    health = HealthMonitor(stuck_after_s=5.0, clock=clock)
    health.register("acquisition")
    health.register("inspection")
    snapshot = {"frames_acquired": 12, "frames_dropped": 2, "store_bytes": 4096}
    metrics = Metrics(lambda: snapshot, health)
    host, port = metrics.serve("127.0.0.1", 0)
    yield metrics, snapshot, health, clock, f"http://{host}:{port}"
    metrics.close()


def test_metrics_endpoint_serves_counters_gauges_and_histograms(served) -> None:
    metrics, snapshot, _, _, url = served
    metrics.observe_stage("engine", 0.02)
    metrics.observe_stage("engine", 0.03)

    status, text = _get(url + "/metrics")
    assert status == 200
    assert "rope_inspect_frames_acquired_total 12.0" in text
    assert "rope_inspect_frames_dropped_total 2.0" in text
    assert "rope_inspect_store_bytes 4096.0" in text
    assert 'rope_inspect_stage_seconds_count{stage="engine"} 2.0' in text
    assert "rope_inspect_frames_inspected" not in text  # absent keys are not invented

    snapshot["frames_acquired"] = 40
    _, text = _get(url + "/metrics")
    assert "rope_inspect_frames_acquired_total 40.0" in text


def test_healthz_flips_to_503_naming_the_stuck_stage(served) -> None:
    _, _, health, clock, url = served
    status, body = _get(url + "/healthz")
    assert status == 200
    assert json.loads(body)["healthy"] is True

    clock.now += 6.0
    health.beat("acquisition")
    status, body = _get(url + "/healthz")
    report = json.loads(body)
    assert status == 503
    assert report["healthy"] is False
    assert list(report["stuck"]) == ["inspection"]

    health.beat("inspection")
    assert _get(url + "/healthz")[0] == 200
    assert _get(url + "/nothing")[0] == 404


def test_two_daemons_have_separate_registries() -> None:
    health = HealthMonitor(stuck_after_s=5.0)
    first = Metrics(lambda: {"frames_inspected": 1}, health)
    second = Metrics(lambda: {"frames_inspected": 2}, health)
    first.observe_stage("total", 0.1)
    assert b"rope_inspect_frames_inspected_total 1.0" in first.render()
    assert b"rope_inspect_frames_inspected_total 2.0" in second.render()
    assert b'stage_seconds_count{stage="total"}' not in second.render()
