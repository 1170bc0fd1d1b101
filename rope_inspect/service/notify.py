"""Telling systemd the truth: sd_notify, and watchdog pings only while stages progress.

`SystemdNotifier` speaks the notify protocol (one datagram of `KEY=value` lines sent to
the unix socket named by `NOTIFY_SOCKET`; a leading '@' means the abstract namespace).
Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same outside
systemd. `HealthMonitor` keeps the last progress time of each stage of the data flow;
`Watchdog` sends `WATCHDOG=1` every WATCHDOG_USEC / 2 only while no stage is stuck, so
systemd restarts a daemon whose camera read or engine call hangs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rope_inspect.log import get_logger

log = get_logger(__name__)


def _socket_address(raw: str) -> str:
    """NOTIFY_SOCKET value -> address for `socket.sendto` ('@x' is abstract '\\0x')."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    return raw


class SystemdNotifier:
    """sd_notify over a unix datagram socket; a no-op when NOTIFY_SOCKET is unset."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _socket_address(raw) if raw else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.watchdog_interval_s = _watchdog_interval(env)
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines (`ready=1` -> `READY=1`); True when delivered."""
        if self.address is None or not fields:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(message.encode("utf-8"), self.address)
            except OSError as exc:
                self.failed += 1
                log.warning("sd_notify_failed", error=str(exc), fields=sorted(fields))
                return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        if status:
            return self.notify(ready=1, status=status)
        return self.notify(ready=1)

    def status(self, text: str) -> bool:
        return self.notify(status=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self, status: str = "") -> bool:
        if status:
            return self.notify(stopping=1, status=status)
        return self.notify(stopping=1)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_interval(env: dict[str, str] | os._Environ[str]) -> float | None:
    """Ping interval (half of WATCHDOG_USEC) when the watchdog is meant for this pid."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("watchdog_usec_invalid", value=usec)
        return None
    return value / 2e6 if value > 0 else None


@dataclass
class StageHealth:
    """The last time a stage of the data flow showed progress."""

    name: str
    last_progress_s: float
    beats: int = 0
    active: bool = True


class HealthMonitor:
    """Last progress time per stage; stuck after `stuck_after_s` without progress.

    Each daemon thread calls `beat(stage)` every time one of its bounded waits or calls
    returns, so a beat stops only when a call inside the stage hangs. A stage that is
    legitimately finished (a replay that ended) is marked with `finish(stage)`.
    """

    def __init__(
        self, stuck_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stuck_after_s = stuck_after_s
        self._clock = clock
        self._stages: dict[str, StageHealth] = {}
        self._lock = threading.Lock()

    def register(self, stage: str) -> None:
        with self._lock:
            self._stages[stage] = StageHealth(stage, self._clock())

    def beat(self, stage: str) -> None:
        now = self._clock()
        with self._lock:
            health = self._stages.get(stage)
            if health is None:
                health = self._stages[stage] = StageHealth(stage, now)
            health.last_progress_s = now
            health.beats += 1
            health.active = True

    def finish(self, stage: str) -> None:
        with self._lock:
            if stage in self._stages:
                self._stages[stage].active = False

    def stuck(self) -> dict[str, float]:
        """Stages without progress for too long -> seconds since their last progress."""
        now = self._clock()
        with self._lock:
            return {
                h.name: round(now - h.last_progress_s, 3)
                for h in self._stages.values()
                if h.active and now - h.last_progress_s > self.stuck_after_s
            }

    def healthy(self) -> bool:
        return not self.stuck()

    def snapshot(self) -> dict[str, dict[str, float | int | bool]]:
        now = self._clock()
        with self._lock:
            return {
                h.name: {
                    "seconds_since_progress": round(now - h.last_progress_s, 3),
                    "beats": h.beats,
                    "active": h.active,
                }
                for h in self._stages.values()
            }


class Watchdog:
    """Thread pinging the systemd watchdog while no stage is stuck."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        health: HealthMonitor,
        interval_s: float | None = None,
    ) -> None:
        self.notifier = notifier
        self.health = health
        self.interval_s = interval_s or notifier.watchdog_interval_s
        self.pings = 0
        self.withheld = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_stuck: dict[str, float] = {}

    def start(self) -> None:
        if self.interval_s is None or not self.notifier.enabled:
            log.info("watchdog_off", reason="WATCHDOG_USEC or NOTIFY_SOCKET unset")
            return
        self._thread = threading.Thread(
            target=self._run, name="rope-watchdog", daemon=True
        )
        self._thread.start()
        log.info("watchdog_started", interval_s=self.interval_s)

    def tick(self) -> bool:
        """One check: ping when healthy, else withhold and log the stuck stages."""
        stuck = self.health.stuck()
        if stuck:
            self.withheld += 1
            if stuck.keys() != self._was_stuck.keys():
                log.error("watchdog_withheld", stuck=stuck)
            self._was_stuck = stuck
            return False
        if self._was_stuck:
            log.info("watchdog_resumed")
            self._was_stuck = {}
        if self.notifier.watchdog():
            self.pings += 1
        return True

    def _run(self) -> None:
        interval = self.interval_s or 1.0
        while not self._stop.wait(interval):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
