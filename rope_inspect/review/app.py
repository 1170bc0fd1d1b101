"""The QA review web app (FastAPI): defect grid, detail view, verdicts, charts.

`create_app(ReviewSettings(...))` builds the app over one store folder; the CLI serves
it with uvicorn. Pages are server-rendered Jinja2 templates with a little vanilla JS
(`static/review.js`) for keyboard review; everything is shipped in the package, no
CDN. The access rules (`security.py`) are enforced by one middleware on every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from rope_inspect.review import security
from rope_inspect.review.routes import router
from rope_inspect.review.views import calibration_threshold
from rope_inspect.storage import StoreView

HERE = Path(__file__).parent
PUBLIC_PATHS = ("/login", "/static/")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class ReviewSettings:
    """What the review page serves, where, and for whom (see `security.py`)."""

    store: Path
    host: str = "127.0.0.1"
    token: str | None = None
    calibration: Path | None = None
    page_size: int = 60


def _refusal(request: Request, policy: security.AccessPolicy) -> Response | None:
    """Why this request may not go on, as a response; None when it may."""
    if policy.token is None and not security.is_loopback(request.url.hostname or ""):
        # without a token only loopback Host names are served (DNS rebinding)
        return JSONResponse({"detail": "unknown host"}, status_code=400)
    if (
        request.method == "POST"
        and request.headers.get("sec-fetch-site") == "cross-site"
    ):
        return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
    if request.url.path.startswith(PUBLIC_PATHS) or policy.request_ok(request):
        return None
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        query = f"?{request.url.query}" if request.url.query else ""
        target = urlencode({"next": request.url.path + query})
        return RedirectResponse(f"/login?{target}", status_code=303)
    return JSONResponse(
        {"detail": "token required"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _install_guard(app: FastAPI, policy: security.AccessPolicy) -> None:
    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = _refusal(request, policy) or await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def create_app(settings: ReviewSettings) -> FastAPI:
    """The review app over `settings.store`.

    Raises ConfigError when the host is not loopback and there is no token or the
    calibration file is unusable, and StoreError when the folder holds no store.
    """
    policy = security.AccessPolicy(settings.host, settings.token)
    threshold = calibration_threshold(settings.calibration)
    view = StoreView.open(settings.store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        view.close()

    app = FastAPI(
        title="rope-inspect review",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.view = view
    app.state.settings = settings
    app.state.policy = policy
    app.state.login_limiter = security.LoginLimiter()
    app.state.threshold = threshold
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _install_guard(app, policy)
    app.include_router(router)
    return app
