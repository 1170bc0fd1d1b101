"""What the daemon tells people while it runs and when it stops.

`status_text` is the one-line status (frames, fps, drops, tiles per frame, defects,
latency, faults): redrawn in place on a terminal, logged and sent as sd_notify STATUS
every `service.status_interval_s` otherwise. `format_summary` renders the end-of-run
summary, including the ground-truth scores, for the terminal; the same dict is the
`--report` JSON.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def status_text(snap: dict[str, Any]) -> str:
    """One line from a daemon snapshot."""
    inspected = snap.get("frames_inspected", 0)
    tiles = snap.get("tiles", 0)
    per_frame = tiles / inspected if inspected else 0.0
    latency = snap.get("latency_ms", {}).get("total")
    parts = [
        f"frames {snap.get('frames_acquired', 0)}",
        f"inspected {inspected}",
        f"fps {snap.get('fps', 0.0):.1f}",
        f"drops {snap.get('frames_dropped', 0)}",
        f"tiles/frame {per_frame:.1f}",
        f"defects {snap.get('defects', 0)}",
        f"latency {latency:.0f} ms" if latency is not None else "latency -",
    ]
    skipped = snap.get("frames_quality_skipped", 0) + snap.get("frames_uninspected", 0)
    if skipped:
        parts.append(f"not inspected {skipped}")
    faults = snap.get("fault_conditions") or {}
    if faults:
        parts.append("FAULT " + ",".join(sorted(faults)))
    if snap.get("store_alarm"):
        parts.append("STORE ALARM")
    if snap.get("rejects_failed"):
        parts.append(f"REJECTS FAILED {snap['rejects_failed']}")
    return " | ".join(parts)


class TerminalStatus:
    """The live status line on a terminal: redrawn in place, cleared at the end."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._width = 0

    def show(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _truth_lines(truth: dict[str, Any]) -> list[str]:
    if truth.get("kind") == "synthetic":
        lines = [
            f"  ground truth (synthetic line, {truth['rope_inspected_m']:.1f} m "
            f"inspected, tolerance {truth['tolerance_m']} m):",
            f"    defects found {truth['found']} of "
            f"{truth['defects_in_inspected_frames']} (recall {truth['recall']})",
        ]
        for kind, row in truth["per_type"].items():
            lines.append(
                f"      {kind:<14} {row['found']}/{row['seen']}  recall {row['recall']}"
            )
        lines.append(
            f"    false alarms {truth['false_alarms']} "
            f"({truth['false_alarms_per_100m']} per 100 m)"
        )
        return lines
    lines = [
        f"  ground truth (masks, {truth['images_inspected']} images inspected):",
        f"    defects found {truth['defects_found']}, missed {truth['defects_missed']}",
    ]
    for kind, row in truth["per_type"].items():
        lines.append(f"      {kind:<14} found {row['found']}/{row['images']}")
    lines.append(
        f"    false alarms on good images: {truth['false_alarms_on_good']} defects on "
        f"{truth['good_images_with_false_alarm']} of {truth['good_images']} images"
    )
    lines.append(
        "    defects off the mask on defective images: "
        f"{truth['false_alarms_off_mask_on_defective']}"
    )
    named = truth["images_not_inspected"]
    if named:
        more = truth.get("images_not_inspected_count", len(named)) - len(named)
        tail = f" and {more} more" if more > 0 else ""
        lines.append(f"    not inspected: {', '.join(named)}{tail}")
    return lines


def _source_skips(frames: dict[str, Any], counters: dict[str, int]) -> str:
    """'3 (wrong_size 2, unreadable 1)': frames the source could not use, by reason."""
    skipped = frames.get("skipped_by_source", 0)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counters.items()) if v)
    return f"{skipped} ({reasons})" if skipped and reasons else str(skipped)


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run summary as text."""
    frames = summary.get("frames", {})
    rejects = summary.get("rejects", {})
    lines = [
        f"rope-inspect run: {summary.get('duration_s', 0):.1f} s, "
        f"stopped by {summary.get('stopped_by')}",
        f"  frames acquired {frames.get('acquired', 0)}, dropped "
        f"{frames.get('dropped', 0)}, inspected {frames.get('inspected', 0)}, "
        f"uninspected {frames.get('uninspected', 0)}, skipped for image quality "
        f"{frames.get('quality_skipped', 0)}, skipped by the source "
        f"{_source_skips(frames, summary.get('source_counters') or {})}",
        f"  tiles {summary.get('tiles', 0)} ({summary.get('tiles_per_frame', 0):.1f} "
        f"per frame), {summary.get('fps', 0):.1f} frames/s inspected",
        f"  defects {summary.get('defects', 0)}, stored {summary.get('stored', 0)}, "
        f"rejects fired {rejects.get('fired', 0)}, late {rejects.get('late', 0)}, "
        f"failed {rejects.get('failed', 0)}, not fired {rejects.get('not_fired', 0)}",
    ]
    if rejects.get("failed"):
        lines.append(
            f"  REJECT OUTPUT FAILED: {rejects['failed']} defect(s) NOT MARKED "
            "(reject_state 'failed' in the store); fault output errors "
            f"{summary.get('faults', {}).get('output_errors', 0)}"
        )
    store = summary.get("store") or {}
    if store:
        lines.append(
            f"  store: {store.get('written', 0)} written, {store.get('dropped', 0)} "
            "dropped (memory queue full), "
            f"{len(store.get('unwritten') or [])} not written at shutdown"
        )
    latency = summary.get("latency_ms", {})
    if latency:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in latency.items())
        lines.append(f"  latency ms (moving average): {stages}")
    faults = summary.get("faults", {})
    if faults.get("raised"):
        lines.append(
            f"  fault output raised {faults['raised']} time(s); camera reconnects "
            f"{summary.get('camera', {}).get('reconnects', 0)}"
        )
    for warning in summary.get("warnings") or []:
        lines.append(f"  WARNING: {warning}")
    if not summary.get("accounting_ok", True):
        lines.append(f"  ACCOUNTING MISMATCH: {summary.get('accounting')}")
    note = summary.get("store", {}).get("note")
    if note:
        lines.append(f"  store: {note}")
    recovery = summary.get("store_recovery") or {}
    if recovery and not recovery.get("clean", True):
        lines.append(
            f"  store repaired at start: {len(recovery['lost'])} defect(s) lost in a "
            f"crash, {recovery['reindexed']} re-indexed, "
            f"{recovery['temp_files_removed']} half-written file(s) removed"
        )
    truth = summary.get("ground_truth")
    if truth:
        lines.extend(_truth_lines(truth))
    return "\n".join(lines)
