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
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
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
