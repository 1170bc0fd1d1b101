"""Memory: resident set over 10 000 frames, and allocations per frame in the hot path.

1. RSS: the daemon on the synthetic line (as shipped: rendering, realtime pacing
   off) with small frames (384 x 128, 64 px tiles) and a tiny untrained model of
   the real architecture, so 10 000 frames take minutes. A hot spot is planted
   every 100 frames so decision, rejects and the store run too. RSS is sampled
   with the frame count; the slope over the second half of the frames is reported
   (the first refreshes of the mask and the allocator's arenas settle before).
2. Allocations: the daemon's parts are opened but driven frame by frame on this
   thread (acquisition copy, ring, `Inspector.process`), with no other thread at
   work, under tracemalloc. After warm-up, each frame's transient peak and net
   retained bytes are split by inspection stage (a window ends when the stage's
   timer reports: quality, mask, tiles, engine, stitch, decision). ONNX Runtime's
   own arena is native memory, not traced; numpy arrays are.

Targets (issue 7): RSS flat (baseline slope <= 1 KiB per 1000 frames over the
second half; the baseline is the lowest RSS of each 5 % of the frames);
no allocations per frame in the hot path after warm-up (<= 4 KiB transient per
frame: a handful of small Python objects, no image-sized arrays).

    python benchmarks/memory.py [--quick] [--frames N]
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from bench_inputs import BenchModel
from daemon_runs import PreloadedSource, inspect_config, logs_into, run_daemon
from harness import (
    SCRATCH,
    Table,
    Target,
    machine,
    make_parser,
    median,
    pick,
    report,
    work_dir,
)
from memory_probes import RssSampler, baseline_slope

from rope_inspect.engine.loader import load_engine
from rope_inspect.service.daemon import Daemon
from rope_inspect.service.injection import SpotEngine, export_tiny_model
from rope_inspect.service.parts import open_parts

SLOPE_LIMIT_KIB = 1.0
WARM_SHARE = 0.5  # the slope is fitted over the second half of the frames
TRANSIENT_LIMIT = 4096
SMALL = {
    "source": {"width": 384, "height": 128, "px_per_mm": 4.0},
    "tiling": {"tile": 64, "overlap": 16},
    "mask": {"envelope_margin_px": 20},
}
WINDOWS = ("quality", "mask", "tiles", "engine", "stitch", "output", "decision")


def tiny_model() -> BenchModel:
    path = export_tiny_model(SCRATCH / "tiny-t64.onnx", tile=64)
    return BenchModel(path, None, (64, 64), trained=False, note="tiny untrained DRAEM")


def rss_run(cfg: Any, model: BenchModel, frames: int) -> dict[str, Any]:
    engine = load_engine(cfg.engine, model.tile)
    sampler = RssSampler()
    summary, daemon = run_daemon(
        cfg, SpotEngine(engine, every=100), frames, hook=sampler.attach
    )
    sampler.stop()
    engine.close()
    samples = [row for row in sampler.samples if row[0] > 0]
    points = np.array([row for row in samples if row[0] >= frames * WARM_SHARE], float)
    if len(points) < 3:
        return {"slope_kib_per_1000": float("nan"), "samples": sampler.samples}
    x = points[:, 0]
    slope = float(np.polyfit(x, points[:, 1], 1)[0]) * 1000 / 1024
    kib = [baseline_slope(x, points[:, i], frames) / 1024 for i in (1, 2, 3)]

    def at(share: float) -> float:
        reached = [r[1] for r in samples if r[0] >= frames * share] or [samples[-1][1]]
        return reached[0] / 2**20

    return {
        "frames": daemon.counters.get("frames_inspected"),
        "seconds": summary.get("duration_s"),
        "rss_mib_at": {f"{int(q * 100)} %": at(q) for q in (0.0, 0.25, 0.5, 0.75)},
        "rss_end_mib": samples[-1][1] / 2**20,
        "rss_max_mib": max(r[1] for r in samples) / 2**20,
        "slope_kib_per_1000": slope,
        "baseline_slope_kib_per_1000": kib[0],
        "malloc_heap_slope_kib_per_1000": kib[1],
        "malloc_in_use_slope_kib_per_1000": kib[2],
        "python_blocks_per_1000": baseline_slope(x, points[:, 4], frames),
        "samples": sampler.samples,
    }


class WindowMeter:
    """Transient peak and net bytes of each stage window (a StageTimes sink)."""

    def __init__(self, frames: int) -> None:
        self.peak = np.zeros((frames, len(WINDOWS)), np.int64)
        self.net = np.zeros((frames, len(WINDOWS)), np.int64)
        self.frame = 0
        self._start = 0

    def begin(self, frame: int) -> None:
        self.frame = frame
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]

    def __call__(self, stage: str, seconds: float) -> None:
        if stage not in WINDOWS or self.frame >= len(self.peak):
            return
        current, peak = tracemalloc.get_traced_memory()
        column = WINDOWS.index(stage)
        self.peak[self.frame, column] = peak - self._start
        self.net[self.frame, column] = current - self._start
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]


def hot_path(cfg: Any, model: BenchModel, frames: int, warm: int) -> dict[str, Any]:
    """Drive the inspection path frame by frame under tracemalloc (see module)."""
    source = PreloadedSource(cfg, 50)
    engine = load_engine(cfg.engine, model.tile)
    daemon = Daemon(cfg, source=source, engine=engine, lossless=True)
    parts = open_parts(cfg, daemon, source=source, engine=engine)
    meter = WindowMeter(frames)
    daemon.times.sink = meter
    monitored, ring, inspector = parts.source, parts.ring, parts.inspector
    tracemalloc.start(10)
    try:
        for index in range(warm + frames):
            info = monitored.read_into(ring.begin_write(), 1.0)
            if info is None:
                raise RuntimeError("the synthetic line gave no frame")
            ring.commit(info)
            frame = ring.get(1.0)
            if frame is None:
                raise RuntimeError("the ring gave no frame")
            if index >= warm:
                meter.begin(index - warm)
            inspector.process(frame)
            ring.release(frame)
            if index == warm:
                before = tracemalloc.take_snapshot()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        daemon.shutdown()
    growth = after.compare_to(before, "lineno")
    top = [
        (str(s.traceback), s.size_diff, s.count_diff) for s in growth[:8] if s.size_diff
    ]
    return {"peak": meter.peak, "net": meter.net, "top_growth": top}


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="RSS run length")
    args = parser.parse_args()
    started = machine()
    model = tiny_model()
    frames = args.frames or pick(args, 60, 2000, 10_000)
    work = work_dir("memory")
    cfg = inspect_config("synthetic", model, work, photos=Path(), changes=SMALL)
    with logs_into(work / "daemon.log"):
        rss = rss_run(cfg, model, frames)
        hot = hot_path(cfg, model, pick(args, 20, 200, 1000), pick(args, 5, 50, 50))

    memory = Table(
        f"RSS over {frames} frames (synthetic line 384 x 128, tiny model)",
        [
            "frames inspected",
            "seconds",
            "RSS MiB at 0 / 25 / 50 / 75 % of frames",
            "RSS end MiB",
            "RSS max MiB",
            "slope KiB / 1000 frames (2nd half)",
            "baseline slope (lowest RSS per 5 %)",
        ],
    )
    quarters = " / ".join(f"{v:.1f}" for v in rss.get("rss_mib_at", {}).values())
    memory.add(
        rss.get("frames"),
        rss.get("seconds"),
        quarters,
        rss.get("rss_end_mib"),
        rss.get("rss_max_mib"),
        rss["slope_kib_per_1000"],
        rss.get("baseline_slope_kib_per_1000", float("nan")),
    )
    growth = Table(
        "Where the baseline grows (2nd half, lowest per 5 % of frames, per 1000 "
        "frames): RSS, what malloc holds, what is in use, Python's blocks",
        ["RSS KiB", "malloc heap KiB", "malloc in use KiB", "Python blocks"],
    )
    growth.add(
        *(
            rss.get(key, float("nan"))
            for key in (
                "baseline_slope_kib_per_1000",
                "malloc_heap_slope_kib_per_1000",
                "malloc_in_use_slope_kib_per_1000",
                "python_blocks_per_1000",
            )
        )
    )
    allocs = Table(
        "Hot path allocations per frame after warm-up (bytes, tracemalloc)",
        [
            "window ending at",
            "median transient peak",
            "max transient peak",
            "frames allocating > 1 KiB",
            "mean net retained",
        ],
    )
    peak, net = hot["peak"], hot["net"]
    for column, stage in enumerate(WINDOWS):
        allocs.add(
            stage,
            median(peak[:, column].tolist()),
            int(peak[:, column].max()),
            int((peak[:, column] > 1024).sum()),
            float(net[:, column].mean()),
        )
    per_frame = peak.sum(axis=1)
    allocs.add(
        "whole frame (sum)",
        median(per_frame.tolist()),
        int(per_frame.max()),
        int((per_frame > 1024).sum()),
        float(net.sum(axis=1).mean()),
    )
    sites = Table(
        "Top retained growth after warm-up (tracemalloc)", ["site", "bytes", "blocks"]
    )
    for site, size, count in hot["top_growth"]:
        sites.add(site, size, count)
    targets = [
        Target(
            "RSS baseline slope, KiB per 1000 frames",
            rss.get("baseline_slope_kib_per_1000", float("nan")),
            SLOPE_LIMIT_KIB,
            "lower",
            note="lowest RSS per 5 % of frames, second half",
        ),
        Target(
            "hot path transient bytes per frame (median)",
            median(per_frame.tolist()),
            TRANSIENT_LIMIT,
            "lower",
        ),
    ]
    extra = {"rss_samples": rss["samples"], "top_growth": hot["top_growth"]}
    tables = [memory, growth, allocs, sites]
    report("memory", args, model, tables, targets, started, extra)


if __name__ == "__main__":
    main()
