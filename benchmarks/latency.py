"""Latency: frame capture to decision, median and p99, and the time of each stage.

The daemon runs on a free-running camera stand-in (`PreloadedSource` paced at a
fixed rate, frames dropped by the ring when inspection lags, as with a camera) at
a rate below what this machine sustains: `--load` (default 0.6) of the bare
engine's frame rate, measured first on the same frames. Capture-to-decision is the
time from the frame's capture stamp (when it entered the ring) to the end of its
decision; it splits into the wait in the ring and the inspection stages.

Target (issue 7): p99 <= 2 x median of capture-to-decision latency.

    python benchmarks/latency.py [--quick] [--model engines/x.onnx] [--load 0.6]
"""

from __future__ import annotations

import time
from typing import Any

from bench_inputs import bench_model
from daemon_probes import LatencyProbe
from daemon_runs import (
    PreloadedSource,
    SharedEngine,
    daemon_engine,
    inspect_config,
    logs_into,
    run_daemon,
)
from harness import (
    Table,
    Target,
    machine,
    make_parser,
    median,
    percentile,
    pick,
    report,
    work_dir,
)

from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine

TARGET_TAIL = 2.0
WARM_FRAMES = 5
STAGES = ("quality", "mask", "tiles", "engine", "stitch", "decision", "total")


def capacity_fps(cfg: Any, model: Any, engine: Any, source: PreloadedSource) -> float:
    """Frames per second of the bare engine on this source's tiles."""
    shared = SharedEngine(engine)
    shared.reset(record=True)
    run_daemon(cfg, daemon_engine(shared, model), 8, source=source)
    batches = (shared.recorded or [])[2:8]
    started = time.perf_counter()
    for batch in batches:
        engine.infer(batch)
    return len(batches) / (time.perf_counter() - started)


def run_paced(
    cfg: Any, model: Any, engine: Any, frames: int, fps: float
) -> tuple[LatencyProbe, dict[str, Any]]:
    source = PreloadedSource(cfg, min(frames, 40), fps=fps)
    probe = LatencyProbe()
    shared = SharedEngine(engine)
    summary, _ = run_daemon(
        cfg.model_copy(update={"ring": cfg.ring.model_copy(update={"slots": 4})}),
        daemon_engine(shared, model),
        frames,
        source=source,
        hook=probe.attach,
        lossless=False,
    )
    return probe, summary


def spread(name: str, values: list[float]) -> list[Any]:
    mid, p99 = median(values), percentile(values, 99)
    return [name, 1e3 * mid, 1e3 * p99, 1e3 * max(values), p99 / mid if mid else "-"]


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--load", type=float, default=0.6, help="share of capacity")
    args = parser.parse_args()
    started = machine()
    model = bench_model(args.model)
    engine = load_engine(
        EngineConfig(model=model.onnx, threads=args.threads), model.tile
    )
    frames = pick(args, 12, 40, 300)
    sources = ["synthetic", "replay"] if args.photos.is_dir() else ["synthetic"]
    tables, targets, extra = [], [], {}
    work = work_dir("latency")
    for source in sources:
        cfg = inspect_config(
            source, model, work, photos=args.photos, threads=args.threads
        )
        with logs_into(work / "daemon.log"):
            capacity = capacity_fps(cfg, model, engine, PreloadedSource(cfg, 8))
            fps = args.load * capacity
            probe, summary = run_paced(cfg, model, engine, frames, fps)
        e2e = probe.latency_s[WARM_FRAMES:]
        totals = probe.total_s[WARM_FRAMES:]
        waits = [a - b for a, b in zip(e2e, totals, strict=True)]
        table = Table(
            f"{source}: {len(e2e)} frames at {fps:.2f} fps ({args.load:g} x capacity "
            f"{capacity:.2f} fps); ms",
            ["stage", "median", "p99", "max", "p99 / median"],
        )
        table.add(*spread("capture to decision", e2e))
        table.add(*spread("  wait in ring (capture to inspection)", waits))
        samples = probe.recorder.samples if probe.recorder else {}
        for stage in STAGES:
            values = samples.get(stage, [])[WARM_FRAMES:]
            if values:
                table.add(*spread(f"  {stage}", values))
        tables.append(table)
        tail = percentile(e2e, 99) / median(e2e)
        targets.append(
            Target(
                f"capture-to-decision p99 / median, {source}",
                tail,
                TARGET_TAIL,
                "lower",
            )
        )
        extra[source] = {
            "fps": fps,
            "capacity_fps": capacity,
            "latency_s": e2e,
            "dropped": summary.get("frames_dropped"),
        }
    engine.close()
    report("latency", args, model, tables, targets, started, extra)


if __name__ == "__main__":
    main()
