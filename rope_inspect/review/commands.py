"""`rope-inspect review`: serve the QA review page, or export verdicts as a dataset.

    rope-inspect review --store var/store [--host 127.0.0.1] [--port 8080] [--token T]
                        [--calibration calibration/line.yaml]
    rope-inspect review --store var/store export --verdict false-alarm --out data/qa

Serving refuses any non-loopback --host without a token (--token or the
ROPE_INSPECT_TOKEN environment variable); the token is never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import socket
from dataclasses import asdict
from pathlib import Path

from rope_inspect.errors import ConfigError
from rope_inspect.log import get_logger
from rope_inspect.review import security
from rope_inspect.review.views import calibration_threshold, threshold_of
from rope_inspect.storage import StoreView

log = get_logger(__name__)


def export_command(args: argparse.Namespace) -> int:
    from rope_inspect.review.export import export_dataset

    if not 32 <= args.size <= 4096:
        raise ConfigError(
            f"--size {args.size} is out of range", "use 32 to 4096 pixels"
        )
    fixed = calibration_threshold(args.calibration)
    view = StoreView.open(Path(args.store))
    try:
        threshold = threshold_of(view, fixed)
        summary = export_dataset(
            view, Path(args.out), args.verdict, args.size, threshold
        )
    finally:
        view.close()
    print(json.dumps(asdict(summary), indent=1))
    return 0


def check_port(host: str, port: int) -> None:
    """Bind (host, port) as uvicorn will, and let go; ConfigError when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host} is not an address of this machine ({exc})",
            "use 127.0.0.1 (the default) or an address of one of its interfaces",
        ) from exc
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use by another program",
                f"pass another --port, or stop what listens there (`ss -ltnp "
                f"'sport = :{port}'` shows it)",
            ) from exc
        raise ConfigError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}",
            "ports below 1024 need privileges; use --port 8080, and a --host that "
            "is an address of this machine",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.close()


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from rope_inspect.review.app import ReviewSettings, create_app

    token = security.token_from(args.token)
    settings = ReviewSettings(
        store=Path(args.store),
        host=args.host,
        token=token,
        calibration=args.calibration,
    )
    app = create_app(settings)
    check_port(args.host, args.port)
    log.info(
        "review_serving",
        url=f"http://{args.host}:{args.port}/",
        store=str(settings.store),
        access="token" if token else "no token (loopback only)",
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def review_command(args: argparse.Namespace) -> int:
    if getattr(args, "review_action", None) == "export":
        return export_command(args)
    return serve_command(args)
