"""Reject timing on a fake clock: on at the actuator, pulse length, late, shutdown."""

from __future__ import annotations

import time

import pytest
from structlog.testing import capture_logs

from rope_inspect.config import RejectConfig
from rope_inspect.errors import OutputError
from rope_inspect.reject.base import LogOutput
from rope_inspect.reject.scheduler import LinearRopePosition, RejectScheduler

SPEED = 0.5  # m/s


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingOutput:
    """Records (fake time, level) of every change."""

    def __init__(self, clock: FakeClock, fail: bool = False) -> None:
        self.name = "recording"
        self.clock = clock
        self.fail = fail
        self.changes: list[tuple[float, bool]] = []

    def set(self, active: bool) -> None:
        if self.fail:
            raise OutputError("PLC gone", "plug it in")
        self.changes.append((self.clock(), active))

    def pulse(self, duration_s: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _scheduler(
    clock: FakeClock, outputs: list[RecordingOutput], **cfg: float
) -> tuple[RejectScheduler, LinearRopePosition]:
    reject_cfg = RejectConfig(
        actuator_distance_m=cfg.get("distance", 2.0),
        lead_m=cfg.get("lead", 0.05),
        pulse_ms=cfg.get("pulse_ms", 200.0),
    )
    position = LinearRopePosition(SPEED, clock)
    return RejectScheduler(
        outputs, reject_cfg, position, speed_m_per_s=SPEED, clock=clock
    ), position


def _run_until(scheduler: RejectScheduler, clock: FakeClock, end: float) -> None:
    """Advance the fake clock exactly as the scheduler thread would sleep."""
    while clock.now < end:
        wait = scheduler.poll()
        clock.now = min(clock.now + max(wait, 1e-4), end)
    scheduler.poll()


def test_pulse_fires_when_the_defect_reaches_the_actuator() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output])
    start = clock.now
    scheduler.schedule(position(), length_m=0.02, defect_id=7)
    assert scheduler.poll() == pytest.approx((2.0 - 0.01 - 0.05) / SPEED)
    _run_until(scheduler, clock, start + 10)
    (t_on, on), (t_off, off) = output.changes
    assert (on, off) == (True, False)
    assert t_on - start == pytest.approx((2.0 - 0.01 - 0.05) / SPEED, abs=1e-3)
    assert t_off - start == pytest.approx((2.0 + 0.01 + 0.05) / SPEED, abs=1e-3)
    stats = scheduler.stats()
    assert (stats.scheduled, stats.fired, stats.late, stats.pending) == (1, 1, 0, 0)


def test_short_defects_still_get_the_configured_pulse_length() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output], lead=0.0, pulse_ms=500)
    scheduler.schedule(position(), length_m=0.0)
    _run_until(scheduler, clock, clock.now + 10)
    (t_on, _), (t_off, _) = output.changes
    assert t_off - t_on == pytest.approx(0.5, abs=1e-3)


def test_defect_seen_upstream_of_the_camera_centre_fires_later() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output], lead=0.0)
    start = clock.now
    scheduler.schedule(position() + 0.1)  # 10 cm upstream of the camera centre
    _run_until(scheduler, clock, start + 10)
    assert output.changes[0][0] - start == pytest.approx(2.1 / SPEED, abs=1e-3)


def test_overlapping_rejects_make_one_longer_pulse() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output], lead=0.0, pulse_ms=400)
    start = clock.now
    scheduler.schedule(position())
    clock.now += 0.2
    scheduler.schedule(position())
    _run_until(scheduler, clock, start + 10)
    assert [level for _, level in output.changes] == [True, False]
    assert output.changes[1][0] - start == pytest.approx(4.0 + 0.2 + 0.4, abs=1e-3)
    assert scheduler.stats().fired == 2


def test_reject_whose_time_has_passed_fires_at_once_and_counts_late() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output])
    with capture_logs() as logs:
        scheduler.schedule(position() - 2.5, defect_id="old")
    scheduler.poll()
    assert output.changes == [(clock.now, True)]
    assert scheduler.stats().late == 1
    assert logs[0]["event"] == "reject_late" and logs[0]["defect_id"] == "old"


def test_encoder_positions_are_polled() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    counts = [0]
    cfg = RejectConfig(actuator_distance_m=1.0, lead_m=0.0, pulse_ms=100)
    scheduler = RejectScheduler(
        [output], cfg, lambda: counts[0] / 1000.0, clock=clock, poll_s=0.002
    )
    scheduler.schedule(0.0)
    assert scheduler.poll() == 0.002
    counts[0] = 999
    scheduler.poll()
    assert output.changes == []
    counts[0] = 1000
    scheduler.poll()
    assert output.changes == [(clock.now, True)]
    clock.now += 0.05  # position reached but pulse_ms not over
    scheduler.poll()
    clock.now += 0.06
    scheduler.poll()
    assert [level for _, level in output.changes] == [True, False]


def test_shutdown_logs_every_pending_reject_as_not_fired() -> None:
    clock = FakeClock()
    output = RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [output])
    scheduler.schedule(position() - 2.0, defect_id="now")  # at the actuator now
    scheduler.schedule(position(), defect_id="a")
    scheduler.schedule(position() + 0.3, defect_id="b")
    scheduler.poll()
    assert output.changes[-1][1] is True
    with capture_logs() as logs:
        lost = scheduler.shutdown()
        assert scheduler.schedule(position(), defect_id="c") is None
    assert [r.defect_id for r in lost] == ["a", "b"]
    not_fired = [e for e in logs if e["event"] == "reject_not_fired"]
    assert [e["defect_id"] for e in not_fired] == ["a", "b", "c"]
    assert scheduler.stats().not_fired == 3
    assert output.changes[-1][1] is False  # the gate is not left open


def test_a_failing_output_is_counted_and_the_others_still_fire() -> None:
    clock = FakeClock()
    broken, good = RecordingOutput(clock, fail=True), RecordingOutput(clock)
    scheduler, position = _scheduler(clock, [broken, good])
    scheduler.schedule(position() - 5)
    scheduler.poll()
    assert good.changes == [(clock.now, True)]
    assert scheduler.stats().output_errors == 1


def test_a_reject_whose_output_failed_is_not_counted_as_fired() -> None:
    """PLC unreachable: the reject is "failed" (stats, log, callback), never fired;
    the next reject retries the switch-on and fires once the output works again."""
    clock = FakeClock()
    plc = RecordingOutput(clock, fail=True)
    scheduler, position = _scheduler(clock, [plc], lead=0.0, pulse_ms=400)
    outcomes: list[tuple[object, str, str]] = []
    scheduler.on_outcome = lambda r: outcomes.append((r.defect_id, r.outcome, r.error))
    first = scheduler.schedule(position() - 2.0, defect_id="a")  # due now
    with capture_logs() as logs:
        scheduler.poll()
    assert first is not None and first.outcome == "failed" and first.fired_s is None
    stats = scheduler.stats()
    assert (stats.fired, stats.failed, stats.outputs_ok) == (0, 1, False)
    assert outcomes == [("a", "failed", "recording: PLC gone\n  hint: plug it in")]
    assert any(e["event"] == "reject_failed" for e in logs)
    assert not any(e["event"] == "reject_fired" for e in logs)

    plc.fail = False  # the PLC is back: the gate is still on, but the next reject
    clock.now += 0.1  # switches again instead of trusting the failed switch-on
    second = scheduler.schedule(position() - 2.0, defect_id="b")
    scheduler.poll()
    assert second is not None and second.outcome == "fired"
    assert plc.changes == [(clock.now, True)]
    assert outcomes[-1][:2] == ("b", "fired")
    stats = scheduler.stats()
    assert (stats.fired, stats.failed, stats.outputs_ok) == (1, 1, True)


def test_every_outcome_reaches_the_callback() -> None:
    clock = FakeClock()
    scheduler, position = _scheduler(clock, [RecordingOutput(clock)])
    outcomes: list[tuple[object, str]] = []
    scheduler.on_outcome = lambda r: outcomes.append((r.defect_id, r.outcome))
    scheduler.schedule(position() - 2.0, defect_id="now")
    scheduler.schedule(position(), defect_id="later")
    scheduler.poll()
    scheduler.shutdown()
    scheduler.schedule(position(), defect_id="after")
    assert outcomes == [
        ("now", "fired"),
        ("later", "not_fired"),
        ("after", "not_fired"),
    ]


def test_scheduler_thread_fires_and_stops_on_the_real_clock() -> None:
    output = LogOutput()
    cfg = RejectConfig(actuator_distance_m=0.05, lead_m=0.0, pulse_ms=30)
    position = LinearRopePosition(1.0)
    scheduler = RejectScheduler([output], cfg, position, speed_m_per_s=1.0)
    scheduler.start()
    scheduler.schedule(position())
    deadline = time.monotonic() + 5
    while len(output.history) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [level for _, level in output.history] == [True, False]
    assert scheduler.shutdown() == []
    assert scheduler._thread is not None and not scheduler._thread.is_alive()
