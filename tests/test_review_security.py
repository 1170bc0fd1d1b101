"""Security of the review page: token, bind address, host check, traversal, logs."""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from rope_inspect.errors import ConfigError
from rope_inspect.review import commands, routes, security
from rope_inspect.review.app import ReviewSettings, create_app
from rope_inspect.storage import DefectQuery, StoreView
from rope_inspect.storage.sample import write_sample_store

TOKEN = "tok-4f9a2c7e1b8d"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security") / "store"
    write_sample_store(root, count=3, seed=2)
    outside = root.parent / "secret.png"
    outside.write_bytes(b"\x89PNG secret outside the store")
    day = next((root / "defects").iterdir())
    (day / "escape.png").symlink_to(outside)
    (day / "escape-dir").symlink_to(root.parent, target_is_directory=True)
    return root


def a_crop(store: Path) -> str:
    view = StoreView.open(store)
    crop = view.list_defects(DefectQuery(limit=1)).items[0].crop
    view.close()
    return crop


def test_non_local_bind_needs_a_token(store: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "rope-qa.example"):
        with pytest.raises(ConfigError, match="without a token"):
            create_app(ReviewSettings(store=store, host=host))
    with pytest.raises(ConfigError, match="shorter than 8"):
        create_app(ReviewSettings(store=store, host="0.0.0.0", token="short"))
    create_app(ReviewSettings(store=store, host="127.0.0.1"))  # local: allowed


def test_loopback_names() -> None:
    for host in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"):
        assert security.is_loopback(host)
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", ""):
        assert not security.is_loopback(host)


def test_token_required_on_every_request(store: Path) -> None:
    app = create_app(ReviewSettings(store=store, host="0.0.0.0", token=TOKEN))
    crop = a_crop(store)
    with TestClient(app, base_url="http://10.1.2.3:8080") as client:
        page = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        for path in ("/api/defects", f"/files/{crop}", "/defect/x"):
            assert client.get(path).status_code == 401
        wrong = {"authorization": "Bearer not-the-token"}
        assert client.get("/api/defects", headers=wrong).status_code == 401
        right = {"authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/defects", headers=right).status_code == 200
        assert client.get(f"/files/{crop}", headers=right).status_code == 200
        assert client.get("/static/review.css").status_code == 200
        assert client.post("/api/verdict", json={}).status_code == 401


def test_login_form_sets_httponly_session_cookie(store: Path) -> None:
    app = create_app(ReviewSettings(store=store, host="0.0.0.0", token=TOKEN))
    with TestClient(app, base_url="http://10.1.2.3:8080") as client:
        bad = client.post("/login", data={"token": "guess-guess", "next": "/"})
        assert bad.status_code == 401 and "not right" in bad.text
        assert security.AUTH_COOKIE not in client.cookies
        good = client.post(
            "/login",
            data={"token": TOKEN, "next": "/?sort=score"},
            follow_redirects=False,
        )
        assert good.status_code == 303 and good.headers["location"] == "/?sort=score"
        set_cookie = good.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower()
        assert TOKEN not in set_cookie
        assert client.get("/").status_code == 200
        client.cookies.clear()
        client.cookies.set(security.AUTH_COOKIE, "0" * 64)
        assert client.get("/api/defects").status_code == 401


def test_token_guessing_is_throttled_per_client(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "LOGIN_FAIL_DELAY_S", 0.0)
    now = [1000.0]
    app = create_app(ReviewSettings(store=store, host="0.0.0.0", token=TOKEN))
    app.state.login_limiter = security.LoginLimiter(clock=lambda: now[0])
    with TestClient(app, base_url="http://10.1.2.3:8080") as client:
        for _ in range(5):
            wrong = client.post("/login", data={"token": "guess-guess", "next": "/"})
            assert wrong.status_code == 401
        with capture_logs() as events:
            locked = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert locked.status_code == 429 and locked.headers["retry-after"] == "2"
        assert "try again in 2 s" in locked.text
        assert security.AUTH_COOKIE not in client.cookies
        assert events[0]["event"] == "review_login_throttled"
        now[0] += 2.5  # the wait is over: one more wrong try doubles it
        assert (
            client.post("/login", data={"token": "guess-2", "next": "/"}).status_code
            == 401
        )
        again = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert again.status_code == 429 and again.headers["retry-after"] == "4"
        now[0] += 4.5
        good = client.post(
            "/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False
        )
        assert good.status_code == 303  # and the count starts again
        assert app.state.login_limiter.retry_after("testclient") == 0.0


def test_login_limiter_forgets_and_stays_bounded() -> None:
    now = [0.0]
    limiter = security.LoginLimiter(
        free=2, forget_s=60, max_clients=3, clock=lambda: now[0]
    )
    assert limiter.failed("a") == 0.0 and limiter.failed("a") == 2.0
    assert limiter.retry_after("b") == 0.0  # other clients are not affected
    now[0] += 61
    assert limiter.retry_after("a") == 0.0  # quiet long enough: forgotten
    for client in ("c", "d", "e", "f"):
        limiter.failed(client)
    assert len(limiter._fails) == 3


def test_host_header_and_cross_site_checks(store: Path) -> None:
    app = create_app(ReviewSettings(store=store))
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        assert client.get("/", headers={"host": "evil.example:8080"}).status_code == 400
        assert client.get("/", headers={"host": "localhost:8080"}).status_code == 200
        page = client.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        cross = client.post(
            "/api/verdict",
            json={"id": "x"},
            headers={"sec-fetch-site": "cross-site"},
        )
        assert cross.status_code == 403


TRAVERSALS = [
    "/files/../index.sqlite",
    "/files/%2e%2e/index.sqlite",
    "/files/%2E%2E%2Findex.sqlite",
    "/files/defects/../index.sqlite",
    "/files/defects/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/files/..%2f..%2f..%2fetc%2fpasswd",
    "/files//etc/passwd",
    "/files/%2Fetc%2Fpasswd",
    "/files/index.sqlite",
    "/files/.lock",
    "/files/defects/..%5cindex.sqlite",
]


def test_store_file_refuses_escapes(store: Path) -> None:
    day = next((store / "defects").iterdir()).name
    for relative in (
        "../secret.png",
        "defects/../../secret.png",
        f"defects/{day}/escape.png",
        f"defects/{day}/escape-dir/secret.png",
        str(store.parent / "secret.png"),
        "index.sqlite",
        "defects\\..\\index.sqlite",
        "defects/\0.png",
    ):
        assert security.store_file(store, relative) is None, relative
    assert security.store_file(store, a_crop(store)) is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(store: Path) -> Iterator[int]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(ReviewSettings(store=store)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def test_traversal_on_the_wire(live_server: int, store: Path) -> None:
    """Raw request lines, not normalised by any client, against a real uvicorn."""
    day = next((store / "defects").iterdir()).name
    paths = [
        *TRAVERSALS,
        f"/files/defects/{day}/escape.png",
        f"/files/defects/{day}/escape-dir/secret.png",
    ]
    for path in paths:
        conn = http.client.HTTPConnection("127.0.0.1", live_server, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status in (400, 404), (path, response.status)
        assert b"secret" not in body and b"SQLite" not in body and b"root:" not in body
    conn = http.client.HTTPConnection("127.0.0.1", live_server, timeout=10)
    conn.request("GET", f"/files/{a_crop(store)}")
    assert conn.getresponse().status == 200
    conn.close()


def test_token_never_logged(
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy, symlinks=True)
    monkeypatch.setenv(security.TOKEN_ENV, TOKEN)
    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    caplog.set_level(logging.DEBUG)
    args = argparse.Namespace(
        store=copy, host="0.0.0.0", port=0, token=None, calibration=None
    )
    with capture_logs() as events:
        assert commands.review_command(args) == 0
        app = served["app"]
        with TestClient(app, base_url="http://10.0.0.5:8099") as client:  # type: ignore[arg-type]
            client.post("/login", data={"token": "wrong-token-x", "next": "/"})
            client.post("/login", data={"token": TOKEN, "next": "/"})
            client.get("/", headers={"authorization": f"Bearer {TOKEN}"})
            token = client.cookies.get(security.CSRF_COOKIE)
            defect_id = client.get("/api/defects").json()["items"][0]["id"]
            client.post(
                "/api/verdict",
                json={"id": defect_id, "verdict": "defect"},
                headers={"X-CSRF-Token": token or ""},
            )
    logged = repr(events) + caplog.text + "".join(capsys.readouterr())
    assert "review_serving" in logged and "review_verdict" in logged
    assert "review_login_failed" in logged
    assert TOKEN not in logged
    assert os.environ[security.TOKEN_ENV] == TOKEN


def test_port_in_use_is_a_clean_error_before_serving(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(app: object, **kw: object) -> None:
        raise AssertionError("uvicorn was started on a port in use")

    monkeypatch.setattr(uvicorn, "run", refuse)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = argparse.Namespace(
            store=store, host="127.0.0.1", port=port, token=None, calibration=None
        )
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use"):
            commands.review_command(args)
    with pytest.raises(ConfigError, match="not an address"):
        commands.check_port("no-such-host.invalid", 8080)
