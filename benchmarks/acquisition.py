"""Acquisition: frames per second from the simulated GenTL producer, and the copy.

The real acquisition path (harvesters + genicam's simulated producer viky.cti, the
project's `GenICamSource` and `Acquirer` into a `FrameRing`) runs at the producer's
highest `AcquisitionFrameRate` for each frame size while a consumer thread takes
and releases every frame as it comes. Reported: frames per second sustained, ring
drops, gaps in the camera frame id (frames lost before the host saw them) and the
CPU the process spends per frame.

The copy into the ring (ring slot reserved, RGBa8 -> RGB by OpenCV into the slot,
slot committed) is timed per megapixel against a plain memcpy (`np.copyto`) of the
same payload bytes, interleaved round by round, both rotating through 16 driver-sized
buffers and the ring's slots as the acquisition does. A copy takes microseconds, so
on a machine shared with the engine a round's wall time is mostly waiting for a core
(preemption); the target therefore compares process CPU time (the copying thread is
the only one running), as the median of the per-round ratios; wall-clock best and
median ratios are printed beside it.

Targets (issue 7): sustained rate >= 0.95 x the producer's rate, with no drops; the
copy into the ring <= 2 x a memcpy of the same bytes.

    python benchmarks/acquisition.py [--quick]
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from daemon_probes import thread_cpu
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
)

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import FrameInfo
from rope_inspect.acquisition.genicam import GenICamSource, simulated_producer
from rope_inspect.acquisition.pixel_formats import PixelConverter
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import GenICamSourceConfig

NATIVE = "producer (native threads)"
TARGET_RATE = 0.95
TARGET_COPY = 2.0
BUFFERS = 16  # driver buffers announced in `sustained`
RING_SLOTS = 8


def max_frame_rate(cti: Any) -> float:
    source = GenICamSource(GenICamSourceConfig(kind="genicam", cti=cti, camera="1"))
    source.open()
    try:
        node_map: Any = source.node_map
        return float(node_map.AcquisitionFrameRate.max)
    finally:
        source.close()


def sustained(cti: Any, size: tuple[int, int], rate: float, seconds: float) -> dict:
    """Run camera -> Acquirer -> ring -> draining consumer for `seconds`."""
    cfg = GenICamSourceConfig(
        kind="genicam",
        cti=cti,
        camera="1",
        aoi=(0, 0, *size),
        frame_rate=rate,
        num_buffers=BUFFERS,
        timeout_s=1.0,
    )
    source = GenICamSource(cfg)
    source.open()
    ring = FrameRing(RING_SLOTS, source.frame_shape)
    acquirer = Acquirer.from_config(source, ring, cfg)
    stop = threading.Event()
    taken = [0]

    def consume() -> None:
        while not stop.is_set():
            frame = ring.get(0.2)
            if frame is not None:
                taken[0] += 1
                ring.release(frame)

    consumer = threading.Thread(target=consume, name="consumer", daemon=True)
    consumer.start()
    acquirer.start()
    time.sleep(1.0)  # settle: first buffers, producer start-up
    first, wall, cpu = acquirer.stats(), time.perf_counter(), time.process_time()
    threads = thread_cpu(NATIVE)
    time.sleep(seconds)
    last = acquirer.stats()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = thread_cpu(NATIVE)
    stop.set()
    acquirer.stop(2.0)
    consumer.join(2.0)
    source.close()
    frames = max(1, last.frames - first.frames)
    per_thread = {k: 1e3 * (v - threads.get(k, 0.0)) / frames for k, v in after.items()}
    return {
        "fps": frames / wall,
        "frames": frames,
        "dropped": ring.stats().dropped,
        "id_gaps": last.frame_id_gaps - first.frame_id_gaps,
        "cpu_ms_per_frame": 1e3 * cpu / frames,
        "acquire_ms_per_frame": per_thread.get("acquire", float("nan")),
        "producer_ms_per_frame": per_thread.get(NATIVE, float("nan")),
    }


def copy_cost(size: tuple[int, int], rounds: int) -> dict[str, Any]:
    """The copy into the ring vs np.copyto of the same bytes, per megapixel.

    Into the ring: `FrameRing.begin_write`, `PixelConverter.convert` (RGBa8 -> RGB,
    OpenCV writing into the slot) and `commit`, the acquisition's per-frame work
    between fetch and requeue. Memcpy: `np.copyto` of the same payload into a
    payload-sized buffer. Both take the payloads in turn from BUFFERS driver-sized
    buffers and write in turn into as many destinations as the ring has slots, as
    the acquisition does (not one buffer kept hot in cache).
    """
    width, height = size
    converter = PixelConverter("RGBa8", width, height)
    rng = np.random.default_rng(0)
    payloads = [
        rng.integers(0, 256, converter.needed_bytes, dtype=np.uint8)
        for _ in range(BUFFERS)
    ]
    ring = FrameRing(RING_SLOTS, converter.shape)
    copies = [np.empty_like(payloads[0]) for _ in range(RING_SLOTS + 1)]
    info = FrameInfo(timestamp_ns=0, camera_frame_id=0)
    reps = max(5, int(1e8 // converter.needed_bytes))  # a round: some 10 ms

    def into_ring() -> None:
        for i in range(reps):
            converter.convert(payloads[i % BUFFERS], ring.begin_write())
            ring.commit(info)

    def memcpy() -> None:
        for i in range(reps):
            np.copyto(copies[i % len(copies)], payloads[i % BUFFERS])

    into_ring()
    memcpy()  # warm: every page touched once
    timings = interleave({"ring": into_ring, "memcpy": memcpy}, rounds)
    scale = 1e3 / reps / (width * height / 1e6)  # round seconds -> ms per megapixel
    return {
        "cpu_ms_per_mp": {k: scale * median(v) for k, v in timings.cpu.items()},
        "wall_best_ms_per_mp": {k: scale * min(v) for k, v in timings.wall.items()},
        "ratio_cpu": median(ratios(timings.cpu["ring"], timings.cpu["memcpy"])),
        "ratio_wall_best": min(timings.wall["ring"]) / min(timings.wall["memcpy"]),
        "ratio_wall": median(ratios(timings.wall["ring"], timings.wall["memcpy"])),
        "reps_per_round": reps,
        "rounds": rounds,
    }


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    started = machine()
    cti = simulated_producer()
    if cti is None:
        raise SystemExit("genicam's viky.cti is not installed: pip install genicam")
    rate = max_frame_rate(cti)
    sizes = pick(
        args,
        [(200, 160)],
        [(400, 400), (800, 800)],
        [(400, 400), (640, 480), (800, 800)],
    )
    seconds = pick(args, 0.5, 3.0, 10.0)
    fps = Table(
        f"Simulated GenTL producer at AcquisitionFrameRate {rate:g} -> ring "
        f"({seconds:g} s); CPU ms per frame",
        [
            "size",
            "fps sustained",
            "x producer rate",
            "ring drops",
            "frame id gaps",
            "whole process",
            "acquire thread",
            "producer (native)",
        ],
    )
    copy = Table(
        "Copy into the ring vs memcpy of the same bytes (ms per megapixel; "
        "median of interleaved rounds unless 'best')",
        [
            "size",
            "into ring, CPU",
            "memcpy, CPU",
            "ratio, CPU",
            "into ring, wall best",
            "memcpy, wall best",
            "ratio of wall best",
            "ratio, wall",
        ],
    )
    targets, extra = [], {}
    for size in sizes:
        label = f"{size[0]}x{size[1]}"
        run = sustained(cti, size, rate, seconds)
        fps.add(
            label,
            run["fps"],
            run["fps"] / rate,
            run["dropped"],
            run["id_gaps"],
            run["cpu_ms_per_frame"],
            run["acquire_ms_per_frame"],
            run["producer_ms_per_frame"],
        )
        cost = copy_cost(size, pick(args, 3, 15, 31))
        cpu, best = cost["cpu_ms_per_mp"], cost["wall_best_ms_per_mp"]
        copy.add(
            label,
            cpu["ring"],
            cpu["memcpy"],
            cost["ratio_cpu"],
            best["ring"],
            best["memcpy"],
            cost["ratio_wall_best"],
            cost["ratio_wall"],
        )
        targets.append(
            Target(
                f"sustained / producer rate, {label}",
                run["fps"] / rate,
                TARGET_RATE,
                "higher",
                note=f"{run['dropped']} drops",
            )
        )
        targets.append(
            Target(
                f"copy into ring / memcpy, {label}",
                cost["ratio_cpu"],
                TARGET_COPY,
                "lower",
                note="CPU time, median of per-round ratios (wall: see table)",
            )
        )
        extra[label] = {"sustained": run, "copy": cost}
    report("acquisition", args, None, [fps, copy], targets, started, extra)


if __name__ == "__main__":
    main()
