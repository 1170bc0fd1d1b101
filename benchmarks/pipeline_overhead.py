"""Pipeline overhead: the whole daemon against the bare engine on the very same tiles.

For each source (real-photo replay, synthetic line with realtime pacing off) a first
daemon run records the tile batch of every frame. Then, interleaved round by round,
(a) the whole daemon (acquisition thread, ring, image check, rope mask, tiling,
engine, stitching, decision, reject scheduler, defect store) runs the same frames
again, and (b) the bare engine runs the recorded batches in a loop, one call per
frame. Throughput is steady state: engine-call to engine-call for the daemon, start
to end of the loop for the bare engine, over the same frames. The CPU seconds the
whole process spends per frame are compared too: on a machine shared with other
jobs they hold better than wall-clock rates.

Each source is fed camera-like (frames read beforehand, one copy into the ring per
frame: the pipeline as the issue lists it) and, without --quick, as shipped (the
replay decodes a PNG per frame, the synthetic line renders its rope: work of the
stand-in camera, shown apart in the per-thread table). The looping replay as shipped
keeps the decoded photographs (`source.decoded_cache_mb`): its first pass decodes
each once, so its daemon runs first pass the folder once and are measured after it
(the steady state of a replay that loops for hours). `--feeds` and `--sources`
choose explicitly (e.g. `--quick --sources replay --feeds "as shipped"`).

Target (issue 7): daemon fps >= 0.95 x bare engine fps.

    python benchmarks/pipeline_overhead.py [--quick] [--model engines/x.onnx]
        [--sources replay synthetic] [--feeds camera-like "as shipped"]
"""

from __future__ import annotations

import time
from typing import Any

from bench_inputs import bench_model
from daemon_probes import record_stages
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
    interleave,
    machine,
    make_parser,
    median,
    pick,
    ratios,
    report,
    work_dir,
)

from rope_inspect.acquisition.replay import list_images
from rope_inspect.config import EngineConfig
from rope_inspect.engine.loader import load_engine

TARGET_RATIO = 0.95
SOURCES = ("replay", "synthetic")
FEEDS = ("camera-like", "as shipped")
WARM_FRAMES = 2
STAGES = ("quality", "mask", "tiles", "engine", "stitch", "decision", "total")
ENGINE_THREADS = ("inspect, in engine", "onnxruntime pool")
THREADS = (
    *ENGINE_THREADS,
    "inspect",
    "acquire",
    "rope-mask",
    "defect-store",
    "rope-render",
    "other",
)


def measure(
    cfg: Any,
    model: Any,
    engine: Any,
    sizes: tuple[int, int],
    source: Any,
    skip: int = 0,
) -> dict[str, Any]:
    """Interleaved rounds of daemon and bare engine on one source (see module);
    each daemon run first passes `skip` frames (a looping replay's first pass)."""
    frames, rounds = sizes
    shared = SharedEngine(engine)
    shared.reset(record=True)
    run_daemon(cfg, daemon_engine(shared, model), frames, source=source)
    batches = (shared.recorded or [])[:frames]
    last = len(batches) - 1
    first, end = skip + WARM_FRAMES, skip + last  # the same photographs as bare
    keys = ("daemon_fps", "bare_fps", "daemon_cpu", "bare_cpu")
    state: dict[str, Any] = {key: [] for key in keys}

    def daemon_block() -> None:
        shared.reset(probe_at=(first, end))
        recorder: list[Any] = []
        run_daemon(
            cfg,
            daemon_engine(shared, model),
            skip + frames,
            source=source,
            hook=lambda d: recorder.append(record_stages(d)),
        )
        state["daemon_fps"].append(shared.steady_fps(first, end))
        state["daemon_cpu"].append(shared.cpu_per_frame(first, end))
        state["threads"] = shared.thread_cpu_per_frame()
        state["stages"] = recorder[0].samples

    def bare_block() -> None:
        started, cpu = time.perf_counter(), time.process_time()
        for batch in batches[WARM_FRAMES:last]:
            engine.infer(batch)
        count = last - WARM_FRAMES
        state["bare_fps"].append(count / (time.perf_counter() - started))
        state["bare_cpu"].append((time.process_time() - cpu) / count)

    interleave({"daemon": daemon_block, "bare": bare_block}, rounds)
    state["ratios"] = ratios(state["daemon_fps"], state["bare_fps"])
    state["cpu_ratios"] = ratios(state["bare_cpu"], state["daemon_cpu"])
    state["tiles_per_frame"] = sum(len(b) for b in batches) / max(1, len(batches))
    return state


def first_pass(cfg: Any) -> int:
    """Frames of a looping image replay's first pass, which decodes each image
    once when the folder fits `decoded_cache_mb`; 0 for other sources."""
    source = cfg.source
    if source.kind != "replay" or not source.loop or source.decoded_cache_mb == 0:
        return 0
    return len(list_images(source.path))


def _thread_cells(threads: dict[str, float]) -> list[float]:
    grouped = dict.fromkeys(THREADS, 0.0)
    for name, seconds in threads.items():
        grouped[name if name in grouped else "other"] += seconds
    return [round(1000 * grouped[name], 1) for name in THREADS]


def outside_engine_share(threads: dict[str, float]) -> float:
    """CPU spent outside the engine as a share of the frame's CPU (all threads)."""
    total = sum(threads.values())
    engine = sum(threads.get(name, 0.0) for name in ENGINE_THREADS)
    return (total - engine) / total if total > 0 else float("nan")


def parse_args() -> Any:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--sources", nargs="+", choices=SOURCES, help="default: both (replay if photos)"
    )
    parser.add_argument(
        "--feeds",
        nargs="+",
        choices=FEEDS,
        help="default: camera-like, and as shipped without --quick",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = machine()
    model = bench_model(args.model)
    sizes = pick(args, (6, 1), (10, 3), (24, 7))
    engine = load_engine(
        EngineConfig(model=model.onnx, threads=args.threads), model.tile
    )
    sources = args.sources or (list(SOURCES) if args.photos.is_dir() else ["synthetic"])
    feeds = args.feeds or ["camera-like", *pick(args, [], [], ["as shipped"])]

    fps = Table(
        "Daemon vs bare engine on the same tiles (steady state, interleaved rounds)",
        [
            "source",
            "feed",
            "tiles/frame",
            "daemon fps",
            "bare fps",
            "daemon / bare",
            "per round",
            "daemon CPU ms/frame",
            "bare CPU ms/frame",
            "bare / daemon CPU",
        ],
    )
    where = Table(
        "Inspection stages, median ms per frame (last daemon run)",
        ["source", "feed", *STAGES],
    )
    threads = Table(
        "CPU ms per frame by thread (last daemon run; ORT runs on inspect + pool; "
        "threads other than inspect are counted in 10 ms ticks)",
        ["source", "feed", *THREADS, "outside engine / all"],
    )
    work = work_dir("pipeline")
    targets: list[Target] = []
    extra: dict[str, Any] = {}
    for source in sources:
        cfg = inspect_config(
            source,
            model,
            work,
            photos=args.photos,
            threads=args.threads,
        )
        for feed in feeds:
            with logs_into(work / "daemon.log"):
                frames = (
                    PreloadedSource(cfg, sizes[0] + 12)
                    if feed != "as shipped"
                    else None
                )
                skip = first_pass(cfg) if feed == "as shipped" else 0
                state = measure(cfg, model, engine, sizes, frames, skip)
            ratio, cpu_ratio = median(state["ratios"]), median(state["cpu_ratios"])
            fps.add(
                source,
                feed,
                round(state["tiles_per_frame"], 1),
                median(state["daemon_fps"]),
                median(state["bare_fps"]),
                ratio,
                " ".join(f"{r:.2f}" for r in state["ratios"]),
                1e3 * median(state["daemon_cpu"]),
                1e3 * median(state["bare_cpu"]),
                cpu_ratio,
            )
            stages = state["stages"]
            where.add(source, feed, *(1e3 * median(stages.get(s, [])) for s in STAGES))
            share = outside_engine_share(state["threads"])
            threads.add(source, feed, *_thread_cells(state["threads"]), share)
            label = f"{source}, {feed}"
            targets.append(
                Target(f"daemon / bare fps, {label}", ratio, TARGET_RATIO, "higher")
            )
            targets.append(
                Target(
                    f"bare / daemon CPU per frame, {label}",
                    cpu_ratio,
                    TARGET_RATIO,
                    "higher",
                    note="the same target in CPU time (robust when shared)",
                )
            )
            targets.append(
                Target(
                    f"CPU outside the engine / all, {label}",
                    share,
                    1 - TARGET_RATIO,
                    "lower",
                    note="per-thread CPU, every thread of the daemon",
                )
            )
            state.pop("stages")
            extra[label] = state
    engine.close()
    report(
        "pipeline_overhead", args, model, [fps, where, threads], targets, started, extra
    )


if __name__ == "__main__":
    main()
