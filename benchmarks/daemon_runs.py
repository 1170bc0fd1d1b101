"""Bounded runs of the real daemon for the benchmarks, on the two sources of issue 7.

`inspect_config` builds the daemon config of the real-photo replay (the shipped
`configs/mvtec3d-rope.yaml`, looping, flat out) or of the synthetic line (the shipped
`configs/demo.yaml`, realtime pacing off), pointed at the model under test, a scratch
store and no metrics port. With the untrained stand-in model (its map is ~0.5
everywhere) the thresholds are raised to 0.9 and `SpotEngine` plants a hot spot every
few frames, so the decision, reject and store path still runs on a realistic share
of frames.

Two ways to feed the daemon: the shipped source itself (the replay decodes a PNG per
frame, the synthetic line renders rope: work a camera does not leave to the host),
or `PreloadedSource`, the same frames read once beforehand and then copied into the
ring slot per frame, as a GenTL buffer would be: what the issue calls the pipeline.

`SharedEngine` lends one open engine to run after run (its `close` does nothing) and
stamps the start of every call (wall clock and process CPU time): the gap between
two calls is one whole pipeline cycle, so steady-state throughput, and the CPU
seconds the whole process spends per frame, are read off the stamps, not off
start-up. CPU seconds per frame hold better than wall-clock rates when other jobs
share the machine; `daemon_probes.thread_cpu` splits them by thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from bench_inputs import BenchModel
from daemon_probes import thread_cpu
from harness import ROOT

from rope_inspect.acquisition.base import FrameInfo, FramePacer, open_source
from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.engine.base import Engine
from rope_inspect.log import configure_logging
from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import SpotEngine

SOURCES = {
    "replay": ROOT / "configs" / "mvtec3d-rope.yaml",
    "synthetic": ROOT / "configs" / "demo.yaml",
}
SPOT_EVERY = 20
STANDIN_THRESHOLD = 0.9


@contextmanager
def logs_into(path: Path) -> Iterator[None]:
    """Daemon logs as under systemd (JSON, info level: the per-frame log cost is
    real) but into a file while the block runs, so the tables stay readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    configure_logging("json", "info")
    with path.open("a") as handle:
        saved = sys.stderr
        sys.stderr = handle
        try:
            yield
        finally:
            sys.stderr = saved


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _calibration(base: InspectConfig, model: BenchModel, work: Path) -> Path:
    if model.trained:
        return ROOT / base.calibration
    path = work / f"calibration-{base.line.name}.yaml"
    path.write_text(
        f"line: {base.line.name}\npixel_threshold: {STANDIN_THRESHOLD}\n"
        f"image_threshold: {STANDIN_THRESHOLD}\nmm_per_px: 0.16667\n"
    )
    return path


def inspect_config(
    source: str,
    model: BenchModel,
    work: Path,
    *,
    photos: Path,
    threads: int = 0,
    changes: dict[str, Any] | None = None,
) -> InspectConfig:
    """The shipped config of `source` ("replay" | "synthetic") set up for a bench."""
    base = load_inspect_config(SOURCES[source])
    data = base.model_dump()
    work.mkdir(parents=True, exist_ok=True)
    height, width = model.tile
    across = height if height != width else None
    _merge(
        data,
        {
            "engine": {"model": model.onnx, "threads": threads},
            # the engine under test decides the tile shape; overlap as shipped
            "tiling": {"tile": width, "tile_across": across},
            "calibration": _calibration(base, model, work),
            "store": {"path": work / f"store-{source}"},
            "metrics": {"enabled": False},
            "source": {"realtime": False},
            "service": {"status_interval_s": 3600.0},
        },
    )
    if source == "replay":
        _merge(data, {"source": {"path": photos, "loop": True}})
    _merge(data, changes or {})
    return InspectConfig.model_validate(data)


class PreloadedSource:
    """Frames of a shipped source read once, then copied into the ring per frame.

    Stands for a camera: one copy per frame from a buffer the host did not compute.
    Frames repeat in order after the last one; each read gets a fresh timestamp.
    With `fps` the frames come at that rate (a free-running camera), else flat out.
    """

    def __init__(
        self, cfg: InspectConfig, count: int, fps: float | None = None
    ) -> None:
        inner = open_source(cfg.source, cfg.line)
        self.name = f"preloaded-{inner.name}"
        inner.open()
        try:
            shape = inner.frame_shape
            self.images = np.empty((count, *shape), np.uint8)
            self.infos: list[FrameInfo] = []
            while len(self.infos) < count:
                info = inner.read_into(self.images[len(self.infos)], 5.0)
                if info is not None:
                    self.infos.append(info)
        finally:
            inner.close()
        self.frame_shape = shape
        self.node_map = None
        self.counters: dict[str, int] = {}
        self._pacer = FramePacer(fps or 1.0, realtime=fps is not None)
        self._next = 0

    def open(self) -> None:
        self._next = 0
        self._pacer.restart()

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        if not self._pacer.wait(timeout_s):
            return None
        index = self._next % len(self.infos)
        np.copyto(slot, self.images[index])
        info = self.infos[index]
        self._next += 1
        return FrameInfo(
            timestamp_ns=time.monotonic_ns(),
            camera_frame_id=self._next - 1,
            position_m=info.position_m,
            source_name=info.source_name,
            truth=info.truth,
        )

    def close(self) -> None:
        """Nothing to free: the frames stay for the next run."""


class SharedEngine:
    """An open engine lent to several daemon runs; stamps every call (see module)."""

    def __init__(self, inner: Engine, capacity: int = 100_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.sidecar = inner.sidecar
        self.stamps = np.zeros(capacity)
        self.cpu_stamps = np.zeros(capacity)
        self.engine_cpu = np.zeros(capacity)  # CPU of the calling thread in infer
        self.caller_cpu = np.zeros(capacity)  # the calling thread's CPU at each call
        self.calls = 0
        self.recorded: list[np.ndarray] | None = None
        self.probe_at: tuple[int, ...] = ()
        self.probes: dict[int, dict[str, float]] = {}

    def reset(self, record: bool = False, probe_at: tuple[int, ...] = ()) -> None:
        self.calls = 0
        self.recorded = [] if record else None
        self.probe_at = probe_at
        self.probes = {}

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.calls in self.probe_at:
            self.probes[self.calls] = thread_cpu()
        if self.calls < len(self.stamps):
            self.stamps[self.calls] = time.perf_counter()
            self.cpu_stamps[self.calls] = time.process_time()
            self.caller_cpu[self.calls] = time.thread_time()
        self.calls += 1
        if self.recorded is not None:
            self.recorded.append(tiles.copy())
        started = time.thread_time()
        result = self.inner.infer(tiles)
        if self.calls <= len(self.stamps):
            self.engine_cpu[self.calls - 1] = time.thread_time() - started
        return result

    def close(self) -> None:
        """Kept open for the next run; the benchmark closes `inner` itself."""

    def _span(self, first: int, last: int) -> int:
        last = min(last, self.calls - 1, len(self.stamps) - 1)
        return last if last > first else -1

    def steady_fps(self, first: int, last: int) -> float:
        """Pipeline cycles per second between engine calls `first` and `last`."""
        last = self._span(first, last)
        if last < 0:
            return float("nan")
        return (last - first) / float(self.stamps[last] - self.stamps[first])

    def cpu_per_frame(self, first: int, last: int) -> float:
        """CPU seconds of the whole process (all threads) per pipeline cycle."""
        last = self._span(first, last)
        if last < 0:
            return float("nan")
        spent = float(self.cpu_stamps[last] - self.cpu_stamps[first])
        return spent / (last - first)

    def thread_cpu_per_frame(self) -> dict[str, float]:
        """CPU seconds per frame by thread group between the two probed calls."""
        if len(self.probes) < 2:
            return {}
        first, last = min(self.probes), max(self.probes)
        start, end = self.probes[first], self.probes[last]
        per_frame = {
            k: (v - start.get(k, 0.0)) / (last - first) for k, v in end.items()
        }
        # the calling (inspection) thread to the nanosecond, not in the 10 ms
        # clock ticks the kernel counts other threads in
        in_engine = float(self.engine_cpu[first:last].mean())
        caller = float(self.caller_cpu[last] - self.caller_cpu[first]) / (last - first)
        per_frame["inspect, in engine"] = in_engine
        per_frame["inspect"] = caller - in_engine
        return per_frame


def daemon_engine(shared: SharedEngine, model: BenchModel) -> Any:
    """What the daemon gets: the shared engine, with planted spots for a stand-in."""
    if model.trained:
        return shared
    return SpotEngine(shared, every=SPOT_EVERY)


def run_daemon(
    cfg: InspectConfig,
    engine: Any,
    frames: int,
    *,
    source: Any = None,
    hook: Callable[[Daemon], Any] | None = None,
    lossless: bool = True,
) -> tuple[dict[str, Any], Daemon]:
    """Run the daemon for `frames` frames; return its summary and the daemon itself
    (stopped) for its counters. `lossless`: the source waits for a free ring slot
    instead of the ring dropping the oldest frame (a flat-out replay).

    `hook(daemon)` is called after the daemon is built, before it starts.
    """
    daemon = Daemon(cfg, source=source, engine=engine, lossless=lossless)
    if hook is not None:
        hook(daemon)
    return daemon.run(RunLimits(max_frames=frames)), daemon
