"""sd_notify against a real unix datagram socket; watchdog pings only while healthy."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rope_inspect.service.notify import HealthMonitor, SystemdNotifier, Watchdog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="ri-", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def _receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode("utf-8")
    return dict(line.split("=", 1) for line in data.splitlines())


def test_notifier_sends_ready_status_watchdog_stopping(notify_socket) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})

    assert notifier.ready("camera open, engine loaded")
    assert _receive(sock) == {"READY": "1", "STATUS": "camera open, engine loaded"}
    assert notifier.status("frames 10\nfps 5")
    assert _receive(sock) == {"STATUS": "frames 10 fps 5"}
    assert notifier.watchdog()
    assert _receive(sock) == {"WATCHDOG": "1"}
    assert notifier.stopping()
    assert _receive(sock) == {"STOPPING": "1"}
    assert notifier.sent == 4
    notifier.close()


def test_notifier_abstract_namespace() -> None:
    name = f"rope-inspect-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert _receive(sock) == {"READY": "1"}
        notifier.close()
    finally:
        sock.close()


def test_notifier_is_noop_without_socket() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval_s is None


def test_notifier_reports_a_missing_socket_without_raising(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.ready()
    assert notifier.failed == 1


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "20000000"}
    assert SystemdNotifier(env).watchdog_interval_s == pytest.approx(10.0)
    other_pid = dict(env, WATCHDOG_PID=str(os.getpid() + 1))
    assert SystemdNotifier(other_pid).watchdog_interval_s is None
    own_pid = dict(env, WATCHDOG_PID=str(os.getpid()))
    assert SystemdNotifier(own_pid).watchdog_interval_s == pytest.approx(10.0)


def test_health_monitor_flags_the_stage_that_stops_progressing() -> None:
    clock = FakeClock()
    health = HealthMonitor(stuck_after_s=5.0, clock=clock)
    health.register("acquisition")
    health.register("inspection")

    clock.now += 4.0
    health.beat("acquisition")
    health.beat("inspection")
    assert health.healthy()

    clock.now += 4.0
    health.beat("acquisition")
    clock.now += 2.0
    assert health.stuck() == {"inspection": pytest.approx(6.0)}

    health.finish("inspection")
    assert health.healthy()


def test_watchdog_pings_only_while_every_stage_progresses(notify_socket) -> None:
    sock, path = notify_socket
    clock = FakeClock()
    health = HealthMonitor(stuck_after_s=5.0, clock=clock)
    health.register("acquisition")
    health.register("inspection")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    watchdog = Watchdog(notifier, health)
    assert watchdog.interval_s == pytest.approx(1.0)

    assert watchdog.tick()
    assert _receive(sock) == {"WATCHDOG": "1"}

    clock.now += 6.0
    health.beat("acquisition")  # the engine call hangs: inspection never beats
    assert not watchdog.tick()
    assert not watchdog.tick()
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    assert watchdog.pings == 1
    assert watchdog.withheld == 2

    health.beat("inspection")
    assert watchdog.tick()
    sock.settimeout(2.0)
    assert _receive(sock) == {"WATCHDOG": "1"}
    notifier.close()


def test_watchdog_thread_pings_a_real_socket(notify_socket) -> None:
    sock, path = notify_socket
    health = HealthMonitor(stuck_after_s=30.0)
    health.register("inspection")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    watchdog = Watchdog(notifier, health, interval_s=0.05)
    watchdog.start()
    try:
        assert _receive(sock) == {"WATCHDOG": "1"}
        assert _receive(sock) == {"WATCHDOG": "1"}
    finally:
        watchdog.stop()
        notifier.close()
