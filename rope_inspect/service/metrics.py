"""Prometheus metrics and /healthz for the daemon, on its own registry and HTTP server.

Counters and gauges are read from the daemon's snapshot at scrape time (one source of
truth for the status line, the summary and Prometheus); per-stage latencies are
histograms observed as frames pass. `/healthz` answers 200 while every stage makes
progress and 503 with JSON naming the stuck stages when not. Each `Metrics` has its own
`CollectorRegistry`, so several daemons (tests) can live in one process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from rope_inspect.errors import ConfigError
from rope_inspect.log import get_logger
from rope_inspect.service.notify import HealthMonitor

log = get_logger(__name__)

PREFIX = "rope_inspect"

# snapshot key -> (kind, help); counters get the `_total` suffix from the exposition
METRIC_SPECS: dict[str, tuple[str, str]] = {
    "frames_acquired": ("counter", "frames put into the ring by acquisition"),
    "frames_dropped": ("counter", "frames dropped (ring overflow, oldest first)"),
    "camera_frame_gaps": ("counter", "frames the camera sent that never arrived"),
    "frames_inspected": ("counter", "frames run through the engine and judged"),
    "frames_uninspected": ("counter", "frames not inspected: engine error or NaN"),
    "frames_quality_skipped": ("counter", "frames skipped by the image-quality check"),
    "frames_skipped_by_source": (
        "counter",
        "frames the source could not use (truncated, wrong size, unknown format)",
    ),
    "frames_without_rope": ("counter", "inspected frames where no rope was found"),
    "image_quality_alarms": ("counter", "image-quality alarms raised"),
    "engine_errors": ("counter", "engine calls that raised or returned NaN"),
    "tiles": ("counter", "tiles inferred"),
    "defects": ("counter", "defects found (merged across frames)"),
    "defects_stored": ("counter", "defects handed to the store"),
    "rejects_fired": ("counter", "reject pulses fired"),
    "rejects_late": ("counter", "reject pulses fired after their due time"),
    "rejects_failed": (
        "counter",
        "rejects whose outputs failed to switch (defect not marked)",
    ),
    "reject_output_errors": ("counter", "reject output writes that failed"),
    "fault_output_errors": ("counter", "fault output writes that failed"),
    "rejects_not_fired": ("counter", "rejects pending at shutdown, never fired"),
    "camera_reconnects": ("counter", "successful camera reconnects"),
    "camera_losses": ("counter", "times the camera was lost"),
    "faults_raised": ("counter", "times the fault output was raised"),
    "store_bytes": ("gauge", "disk use of the defect store in bytes"),
    "store_pending": ("gauge", "defects waiting to be written to disk"),
    "store_alarm": ("gauge", "1 while the store cannot write (disk full, read-only)"),
    "fault_active": ("gauge", "1 while the fault output is raised"),
    "camera_connected": ("gauge", "1 while the frame source delivers"),
    "ring_fill": ("gauge", "frames waiting in the ring"),
    "fps": ("gauge", "frames inspected per second, recent window"),
}

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class SnapshotCollector(Collector):
    """Exports the daemon's snapshot dict as counters and gauges at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        values = self._snapshot()
        for key, (kind, text) in METRIC_SPECS.items():
            value = values.get(key)
            if value is None:
                continue
            name = f"{PREFIX}_{key}"
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, text, value=float(value))
            else:
                family = GaugeMetricFamily(name, text, value=float(value))
            yield family


class Metrics:
    """The registry, the stage latency histograms and the HTTP endpoint."""

    def __init__(
        self, snapshot: Callable[[], Mapping[str, Any]], health: HealthMonitor
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.health = health
        self.stage_seconds = Histogram(
            f"{PREFIX}_stage_seconds",
            "time per frame spent in each inspection stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # each stage's labelled child, made on its first observation and kept
        # (labels() builds a key per call)
        self._stage_children: dict[str, Any] = {}
        self.registry.register(SnapshotCollector(snapshot))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def observe_stage(self, stage: str, seconds: float) -> None:
        child = self._stage_children.get(stage)
        if child is None:
            child = self._stage_children[stage] = self.stage_seconds.labels(stage=stage)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def health_report(self) -> tuple[int, dict[str, Any]]:
        stuck = self.health.stuck()
        body: dict[str, Any] = {
            "healthy": not stuck,
            "stuck": stuck,
            "stages": self.health.snapshot(),
        }
        return (200 if not stuck else 503), body

    @property
    def address(self) -> tuple[str, int] | None:
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Take the port now (the daemon does this before it opens anything, so a
        port in use stops it before any work); `serve` answers on it later."""
        if self._server is None:
            handler = _make_handler(self)
            try:
                self._server = ThreadingHTTPServer((host, port), handler)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {host}:{port}: {exc}",
                    "another program (a rope-inspect already running?) uses it: set "
                    "metrics.port to a free port (0 picks one) or metrics.enabled: "
                    "false",
                ) from exc
            self._server.daemon_threads = True
        address = self.address
        if address is None:  # pragma: no cover - set just above
            raise RuntimeError("metrics server did not bind")
        return address

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint in a thread (binding first unless `bind` did);
        port 0 picks a free port."""
        address = self.bind(host, port)
        server = self._server
        if self._thread is None and server is not None:
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="rope-metrics",
                daemon=True,
            )
            self._thread.start()
            log.info("metrics_serving", host=address[0], port=address[1])
        return address

    def close(self) -> None:
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for serve_forever
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


def _make_handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # name set by http.server
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, metrics.render())
            elif path == "/healthz":
                code, body = metrics.health_report()
                payload = json.dumps(body).encode("utf-8")
                self._reply(code, "application/json", payload)
            else:
                self._reply(404, "text/plain", b"see /metrics and /healthz\n")

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes are not events worth a log line

    return Handler
