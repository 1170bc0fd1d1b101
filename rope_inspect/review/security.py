"""Access rules of the review page: bind address and token, CSRF, files of the store.

- Bound to a loopback address by default. Any other address needs a token (from
  `--token` or ROPE_INSPECT_TOKEN); without one the page refuses to start.
- With a token, every request but the login form and the packaged CSS/JS must carry
  it: `Authorization: Bearer <token>` or the HttpOnly session cookie that the login
  form sets (an HMAC of the token, never the token itself). The token is never logged.
- Verdict writes are POST and carry the per-session CSRF token (cookie + header or
  form field, compared in constant time).
- Only files under `<store>/defects` with an image or JSON suffix are served, after
  resolving symlinks; anything else is "not found".
- Token guessing is throttled per client address (`LoginLimiter`): after 5 failed
  logins in a row each further try waits, 2 s doubling up to 15 min (429 with
  Retry-After, even for the right token); a successful login clears the count.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from rope_inspect.errors import ConfigError

TOKEN_ENV = "ROPE_INSPECT_TOKEN"
AUTH_COOKIE = "ri_auth"
CSRF_COOKIE = "ri_csrf"
CSRF_HEADER = "x-csrf-token"
SERVED_SUFFIXES = {".png", ".jpg", ".jpeg", ".json"}
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for 0.0.0.0 and the rest."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """Who may use the page: the bind address and the token (None: no token)."""

    host: str
    token: str | None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 8:
            raise ConfigError(
                "the review token is shorter than 8 characters",
                "use a long random token, e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'`",
            )
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve the review page on {self.host} without a token",
                f"pass --token or set {TOKEN_ENV}, or bind to 127.0.0.1",
            )

    @property
    def session_value(self) -> str:
        """The cookie value that proves a login: HMAC of the token, not the token."""
        key = (self.token or "").encode()
        return hmac.new(key, b"rope-inspect-review-session", hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def request_ok(self, request: Request) -> bool:
        """Does the request carry the token (header) or a login cookie?"""
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.token_ok(header[7:].strip()):
            return True
        cookie = request.cookies.get(AUTH_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session_value.encode())


class LoginLimiter:
    """Failed logins per client: `free` in a row are allowed, then each try must wait
    `base_s` doubling per failure up to `max_s`; a success or `forget_s` of quiet
    clears the client. At most `max_clients` are remembered (oldest forgotten)."""

    def __init__(
        self,
        free: int = 5,
        base_s: float = 2.0,
        max_s: float = 900.0,
        forget_s: float = 3600.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self.forget_s, self.max_clients = forget_s, max_clients
        self.clock = clock
        self._fails: dict[str, tuple[int, float]] = {}  # client -> (count, last)
        self._lock = threading.Lock()

    def _wait(self, count: int, last: float, now: float) -> float:
        if count < self.free:
            return 0.0
        lock = min(self.base_s * 2 ** (count - self.free), self.max_s)
        return max(0.0, last + lock - now)

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait before its next try (0: it may try now)."""
        now = self.clock()
        with self._lock:
            count, last = self._fails.get(client, (0, now))
            if now - last > self.forget_s:
                self._fails.pop(client, None)
                return 0.0
            return self._wait(count, last, now)

    def failed(self, client: str) -> float:
        """Count a failed try; the wait before the next one."""
        now = self.clock()
        with self._lock:
            count, _ = self._fails.pop(client, (0, now))
            self._fails[client] = (count + 1, now)  # re-inserted: newest last
            while len(self._fails) > self.max_clients:
                del self._fails[next(iter(self._fails))]
            return self._wait(count + 1, now, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._fails.pop(client, None)


def token_from(arg: str | None) -> str | None:
    """The token from the command line, else the environment, else None."""
    token = arg or os.environ.get(TOKEN_ENV) or None
    return token.strip() if token else None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """The submitted CSRF token equals the session's cookie (both present)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def safe_next(target: str | None) -> str:
    """A local path to go back to after a form post; anything else goes to '/'."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or "\r" in target or "\n" in target:
        return "/"
    return target


def store_file(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `<root>/defects`, or None when it is not one.

    Absolute paths, `..`, backslashes, NUL bytes, other suffixes and symlinks that
    resolve outside the defects folder are all refused.
    """
    if not relative or relative.startswith("/") or "\\" in relative or "\0" in relative:
        return None
    base = (root / "defects").resolve()
    try:
        resolved = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if (
        not resolved.is_relative_to(base)
        or resolved.suffix.lower() not in SERVED_SUFFIXES
    ):
        return None
    return resolved if resolved.is_file() else None
