"""The daemon's numbers: the live snapshot (metrics, status) and the end-of-run summary.

The summary checks the frame accounting so that nothing is dropped silently:
frames written to the ring = read + dropped + left in the ring, and frames read =
inspected + uninspected + skipped for image quality. A run that inspected no frame
at all is a failed run: `failure` says why, in one line.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rope_inspect.service.daemon import Daemon
    from rope_inspect.service.parts import Parts


def build_snapshot(daemon: Daemon) -> dict[str, Any]:
    """Counters and gauges of every stage now."""
    counts = daemon.counters.snapshot()
    snap: dict[str, Any] = dict(counts)
    snap["fps"] = round(daemon.rate.value, 2)
    snap["latency_ms"] = daemon.times.average_ms()
    snap["fault_active"] = int(daemon.faults.active)
    snap["fault_conditions"] = daemon.faults.conditions()
    snap["faults_raised"] = daemon.faults.raised_count
    snap["fault_output_errors"] = daemon.faults.output_errors
    parts = daemon.parts
    if parts is None:
        return snap
    ring = parts.ring.stats()
    snap.update(
        frames_acquired=ring.written,
        frames_dropped=ring.dropped,
        ring_fill=ring.pending,
    )
    acq = parts.acquirer.stats()
    snap.update(
        camera_frame_gaps=acq.frame_id_gaps,
        camera_reconnects=acq.reconnects,
        camera_losses=acq.losses,
        camera_connected=int(acq.connected),
        camera_timeouts=acq.timeouts,
        frames_skipped_by_source=acq.skipped,
    )
    snap.update(parts.decision.stats())
    store = parts.store.status()
    watch = daemon.store_watch
    snap.update(
        store_bytes=store.bytes_used,
        store_pending=store.pending,
        store_written=store.written,
        store_alarm=int(store.alarm or bool(watch and watch.problem)),
    )
    return snap


def _accounting(snap: dict[str, Any], left_in_ring: int) -> dict[str, Any]:
    taken = snap.get("frames_taken", 0)
    outcomes = (
        snap.get("frames_inspected", 0)
        + snap.get("frames_uninspected", 0)
        + snap.get("frames_quality_skipped", 0)
    )
    written = snap.get("frames_acquired", 0)
    accounted = taken + snap.get("frames_dropped", 0) + left_in_ring
    return {
        "ring_written": written,
        "ring_read_dropped_left": accounted,
        "taken": taken,
        "outcomes": outcomes,
        "ok": written == accounted and taken == outcomes,
    }


def _recovery(parts: Parts) -> dict[str, Any]:
    """What the store repaired when it was opened (after a crash: the lost tail)."""
    found = parts.store.recovery
    return {
        "clean": found.clean,
        "temp_files_removed": found.temp_removed,
        "files_removed": found.files_removed,
        "reindexed": len(found.reindexed),
        "lost": [
            {"id": d.id, "reason": d.reason, "position_m": d.position_m}
            for d in found.lost
        ],
    }


def _last_detail(daemon: Daemon, condition: str) -> str:
    """The detail of the last time a fault condition was raised ("" if never)."""
    for name, active, detail in reversed(daemon.faults.history):
        if name == condition and active:
            return detail.split("\n", 1)[0]
    return ""


def nothing_inspected(summary: dict[str, Any], daemon: Daemon) -> str | None:
    """Why a run inspected no frame ("0 of 40 frames inspected: all 40 skipped by
    the source (wrong_size 40; ...)"); None when it inspected any."""
    frames = summary["frames"]
    if frames["inspected"]:
        return None
    seen = frames["acquired"] + frames["skipped_by_source"]
    if seen == 0:
        camera = summary["camera"]
        return (
            "0 frames inspected: the source delivered no frame "
            f"({camera['timeouts']} timeout(s), {camera['losses']} loss(es))"
        )
    counts = summary.get("source_counters") or {}
    shape = daemon.parts.source.frame_shape if daemon.parts is not None else None
    size = f"; frames must be {shape[1]}x{shape[0]}" if shape else ""
    engine = _last_detail(daemon, "engine") or _last_detail(daemon, "inspection_error")
    reasons = [
        (
            frames["skipped_by_source"],
            "skipped by the source ("
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
            + f"{size})",
        ),
        (
            frames["quality_skipped"],
            f"failed the image check ({_last_detail(daemon, 'image_quality')})",
        ),
        (frames["uninspected"], f"failed in the engine ({engine})"),
        (frames["dropped"], "dropped (ring full)"),
        (frames["left_in_ring"], "left in the ring at the stop"),
    ]
    found = [(count, text) for count, text in reasons if count]
    if len(found) == 1 and found[0][0] == seen:
        return f"0 of {seen} frames inspected: all {seen} {found[0][1]}"
    listed = "; ".join(f"{count} {text}" for count, text in found)
    return f"0 of {seen} frames inspected: {listed}"


def build_summary(daemon: Daemon) -> dict[str, Any]:
    """The end-of-run summary: the --report JSON and the text summary."""
    snap = build_snapshot(daemon)
    report = daemon._shutdown_report or {}
    started, ended = daemon.started_s, daemon.ended_s
    duration = (ended - started) if started is not None and ended is not None else 0.0
    inspected = snap.get("frames_inspected", 0)
    left = int(report.get("left_in_ring", 0))
    accounting = _accounting(snap, left)
    parts = daemon.parts
    summary: dict[str, Any] = {
        "config": str(daemon.config_path) if daemon.config_path else None,
        "line": daemon.cfg.line.name,
        "source": daemon.cfg.source.kind,
        "engine": str(daemon.cfg.engine.model),
        "stopped_by": daemon.stopped_by,
        "duration_s": round(duration, 3),
        "frames": {
            "acquired": snap.get("frames_acquired", 0),
            "dropped": snap.get("frames_dropped", 0),
            "taken": snap.get("frames_taken", 0),
            "inspected": inspected,
            "uninspected": snap.get("frames_uninspected", 0),
            "quality_skipped": snap.get("frames_quality_skipped", 0),
            "without_rope": snap.get("frames_without_rope", 0),
            "left_in_ring": left,
            "camera_frame_gaps": snap.get("camera_frame_gaps", 0),
            "skipped_by_source": snap.get("frames_skipped_by_source", 0),
        },
        "accounting": accounting,
        "accounting_ok": accounting["ok"],
        "tiles": snap.get("tiles", 0),
        "tiles_per_frame": round(snap.get("tiles", 0) / inspected, 2)
        if inspected
        else 0,
        "fps": round(inspected / duration, 2) if duration > 0 else 0.0,
        "image_quality_alarms": snap.get("image_quality_alarms", 0),
        "engine_errors": snap.get("engine_errors", 0),
        "defects": snap.get("defects", 0),
        "stored": report.get("store", {}).get("written", snap.get("store_written", 0)),
        "store": report.get("store", {}),
        "rejects": {
            "scheduled": snap.get("rejects_scheduled", 0),
            "fired": snap.get("rejects_fired", 0),
            "failed": snap.get("rejects_failed", 0),
            "late": snap.get("rejects_late", 0),
            "not_fired": snap.get("rejects_not_fired", 0),
        },
        "faults": {
            "raised": daemon.faults.raised_count,
            "output_errors": daemon.faults.output_errors,
            "history": [list(h) for h in daemon.faults.history],
        },
        "camera": {
            "reconnects": snap.get("camera_reconnects", 0),
            "losses": snap.get("camera_losses", 0),
            "timeouts": snap.get("camera_timeouts", 0),
        },
        "latency_ms": snap.get("latency_ms", {}),
        "latency_max_ms": daemon.times.max_ms(),
        "shutdown": report,
        "threads_alive": sorted(
            t.name for t in threading.enumerate() if t is not threading.main_thread()
        ),
    }
    if parts is not None:
        summary["source_counters"] = dict(parts.source.counters)
        summary["store_recovery"] = _recovery(parts)
    if parts is not None and parts.scorer is not None:
        summary["ground_truth"] = parts.scorer.report()
    summary["warnings"] = list(daemon.warnings)
    summary["failure"] = nothing_inspected(summary, daemon)
    summary["clean_exit"] = bool(
        summary["failure"] is None
        and report.get("within_stop_timeout", True)
        and report.get("inspector_drained", True)
        and not report.get("store", {}).get("unwritten")
    )
    return summary
