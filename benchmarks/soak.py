"""Soak run of the daemon: the synthetic line at full speed for a long bounded run, with
faults injected at intervals, memory sampled over time (issue #5).

    nice -n 10 python benchmarks/soak.py --minutes 30 --out runs/soak/report.json

Faults, on a schedule by frame count: the camera is lost for `--outage-s` seconds
every `--outage-every` frames (reads raise SourceLost, reconnects fail until it is
back), one frame in `--bad-every` arrives all black or saturated, one engine call in
`--nan-every` returns NaN. Without `--model` an untrained tiny model is exported to
the scratch folder and `SpotEngine` plants a defect every `--spot-every` frames, so the
reject and store paths run. Printed and written: frames, drops, reconnects, faults,
defects emitted vs written, RSS memory over time and its slope over the second half
(flat memory: the slope stays near 0 MB/min).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from rope_inspect.acquisition.base import open_source
from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.engine.loader import load_engine
from rope_inspect.log import configure_logging
from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import (
    FaultyEngine,
    FlakySource,
    MalformedFrames,
    SpotEngine,
    export_tiny_model,
)

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    p.add_argument("--model", type=Path, default=None, help="ONNX engine (+ sidecar)")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--outage-every", type=int, default=3000, help="frames")
    p.add_argument("--outage-s", type=float, default=3.0)
    p.add_argument("--bad-every", type=int, default=997, help="frames")
    p.add_argument("--nan-every", type=int, default=1009, help="engine calls")
    p.add_argument("--spot-every", type=int, default=7, help="frames (tiny model)")
    p.add_argument("--sample-s", type=float, default=10.0, help="memory sample period")
    p.add_argument("--out", type=Path, default=None, help="report JSON")
    return p.parse_args(argv)


def soak_config(args: argparse.Namespace, scratch: Path) -> InspectConfig:
    data = load_inspect_config(args.config).model_dump()
    data["source"]["realtime"] = False
    data["store"]["path"] = scratch / "store"
    data["store"]["max_bytes"] = 200_000_000
    data["metrics"]["enabled"] = False
    data["logging"]["level"] = "warning"
    if args.model is not None:
        data["engine"]["model"] = args.model
    else:
        data["engine"]["model"] = export_tiny_model(scratch / "tiny.onnx")
        data["calibration"] = scratch / "calibration.yaml"
        (scratch / "calibration.yaml").write_text(
            "line: demo\npixel_threshold: 0.9\nimage_threshold: 0.9\n"
            "mm_per_px: 0.16667\n"
        )
    return InspectConfig.model_validate(data)


def fault_schedule(args: argparse.Namespace, frames: int) -> dict[str, Any]:
    kinds = ("black", "saturated")
    return {
        "outages": [
            (n, args.outage_s)
            for n in range(args.outage_every, frames, args.outage_every)
        ],
        "bad": {
            n: kinds[i % 2]
            for i, n in enumerate(range(args.bad_every, frames, args.bad_every))
        },
        "nan": set(range(args.nan_every, frames, args.nan_every)),
    }


class MemorySampler:
    """RSS and the daemon's counters every `period_s`, on a thread of its own."""

    def __init__(self, daemon: Daemon, period_s: float) -> None:
        self.daemon, self.period_s = daemon, period_s
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler")
        self._process = psutil.Process()
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            snap = self.daemon.snapshot()
            self.samples.append(
                {
                    "t_s": round(time.monotonic() - self._t0, 1),
                    "rss_mb": round(self._process.memory_info().rss / 2**20, 1),
                    "frames": snap.get("frames_acquired", 0),
                    "dropped": snap.get("frames_dropped", 0),
                    "inspected": snap.get("frames_inspected", 0),
                    "defects": snap.get("defects", 0),
                    "store_written": snap.get("store_written", 0),
                    "store_pending": snap.get("store_pending", 0),
                }
            )
            print(json.dumps(self.samples[-1]), file=sys.stderr, flush=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_slope(samples: list[dict[str, float]]) -> float | None:
    """Least-squares RSS slope (MB per minute) over the second half of the run."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return None
    ts = [s["t_s"] / 60 for s in half]
    ms = [s["rss_mb"] for s in half]
    mean_t, mean_m = sum(ts) / len(ts), sum(ms) / len(ms)
    num = sum((t - mean_t) * (m - mean_m) for t, m in zip(ts, ms, strict=True))
    den = sum((t - mean_t) ** 2 for t in ts)
    return round(num / den, 3) if den else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("console", "warning")
    scratch = Path(tempfile.mkdtemp(prefix="rope-soak-"))
    cfg = soak_config(args, scratch)
    schedule = fault_schedule(args, frames=int(args.minutes * 60 * 400))
    source = FlakySource(
        MalformedFrames(open_source(cfg.source, cfg.line), schedule["bad"]),
        schedule["outages"],
    )
    engine: Any = FaultyEngine(
        load_engine(cfg.engine, cfg.tile_shape), nan_calls=schedule["nan"]
    )
    if args.model is None:
        engine = SpotEngine(engine, every=args.spot_every)
    daemon = Daemon(cfg, source=source, engine=engine)
    with MemorySampler(daemon, args.sample_s) as sampler:
        summary = daemon.run(RunLimits(duration_s=args.minutes * 60))
    result = {
        "minutes": args.minutes,
        "model": str(cfg.engine.model),
        "untrained_stand_in": args.model is None,
        "frames": summary["frames"],
        "accounting_ok": summary["accounting_ok"],
        "camera": summary["camera"],
        "faults_raised": summary["faults"]["raised"],
        "image_quality_alarms": summary["image_quality_alarms"],
        "engine_errors": summary["engine_errors"],
        "defects_emitted": summary["defects"],
        "defects_written": summary["stored"],
        "store_unwritten": summary["store"].get("unwritten", []),
        "rss_mb_first_last": [
            sampler.samples[0]["rss_mb"],
            sampler.samples[-1]["rss_mb"],
        ]
        if sampler.samples
        else None,
        "rss_slope_mb_per_min_second_half": memory_slope(sampler.samples),
        "samples": sampler.samples,
        "scratch": str(scratch),
    }
    text = json.dumps(result, indent=2, default=str)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, default=str))
    return 0 if summary["accounting_ok"] and not result["store_unwritten"] else 1


if __name__ == "__main__":
    sys.exit(main())
