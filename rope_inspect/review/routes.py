"""Routes of the review app: pages, store files, the JSON API, verdicts and login.

Handlers are plain functions over `request.app.state` (`view`, `settings`, `policy`,
`templates`), so one app serves one store. Every HTML page sets the CSRF cookie and
carries the same token in a `<meta>` tag for the script and in each verdict form.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from rope_inspect.log import get_logger
from rope_inspect.review import security
from rope_inspect.review.filters import parse_filters
from rope_inspect.review.views import VerdictIn, card, charts, reviewer_of, threshold_of
from rope_inspect.storage import StoreView
from rope_inspect.storage.record import ID_PATTERN, VERDICTS

log = get_logger(__name__)
router = APIRouter()
LOGIN_FAIL_DELAY_S = 0.5


def _view(request: Request) -> StoreView:
    view: StoreView = request.app.state.view
    return view


def render(
    request: Request, name: str, context: dict[str, Any], status: int = 200
) -> Response:
    """A template response with the session's CSRF token (set when new)."""
    csrf = request.cookies.get(security.CSRF_COOKIE) or security.new_csrf_token()
    context = {
        **context,
        "csrf": csrf,
        "auth": request.app.state.policy.token is not None,
        "reviewer": reviewer_of(request, None),
    }
    templates = request.app.state.templates
    response: Response = templates.TemplateResponse(
        request, name, context, status_code=status
    )
    response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(security.CSRF_COOKIE) != csrf:
        response.set_cookie(
            security.CSRF_COOKIE, csrf, httponly=True, samesite="strict"
        )
    return response


@router.get("/")
def grid_page(request: Request) -> Response:
    view, settings = _view(request), request.app.state.settings
    form, query, errors = parse_filters(request.query_params, settings.page_size)
    page = view.list_defects(query)
    threshold = threshold_of(view, request.app.state.threshold)
    context = {
        "form": form,
        "errors": errors,
        "cards": [card(r) for r in page.items],
        "total": page.total,
        "pages": max(1, math.ceil(page.total / settings.page_size)),
        "counts": view.verdict_counts(query),
        "lines": view.lines(),
        "charts": charts(view, query, threshold),
        "threshold": threshold,
        "store_name": settings.store.name,
        "here": str(request.url.path) + form.href(),
    }
    return render(request, "index.html", context)


@router.get("/defect/{defect_id}")
def detail_page(request: Request, defect_id: str) -> Response:
    record = _view(request).get(defect_id) if ID_PATTERN.match(defect_id) else None
    back = security.safe_next(request.query_params.get("back"))
    if record is None:
        return render(
            request, "missing.html", {"defect_id": defect_id, "back": back}, 404
        )
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context = {"d": card(record), "back": back, "here": here}
    return render(request, "detail.html", context)


@router.get("/files/{relative:path}")
def store_file(request: Request, relative: str) -> Response:
    path = security.store_file(_view(request).root, relative)
    if path is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/api/defects")
def api_defects(request: Request) -> Response:
    view, settings = _view(request), request.app.state.settings
    _, query, errors = parse_filters(request.query_params, settings.page_size)
    if errors:
        return JSONResponse({"detail": errors}, status_code=400)
    page = view.list_defects(query)
    return JSONResponse(
        {
            "total": page.total,
            "offset": page.offset,
            "items": [card(r) for r in page.items],
            "counts": view.verdict_counts(query),
        }
    )


def _apply_verdict(
    request: Request, defect_id: str, verdict: str | None, who: str | None
) -> Response | dict[str, Any]:
    if verdict is not None and verdict not in VERDICTS:
        return JSONResponse({"detail": f"verdict must be one of {VERDICTS}"}, 422)
    view = _view(request)
    reviewer = reviewer_of(request, who)
    record = view.set_verdict(defect_id, verdict, reviewer)
    if record is None:
        return JSONResponse({"detail": "no such defect"}, status_code=404)
    log.info("review_verdict", id=defect_id, verdict=verdict, by=reviewer)
    return {"record": card(record), "counts": view.verdict_counts()}


@router.post("/api/verdict")
def api_verdict(request: Request, body: VerdictIn) -> Response:
    if not security.csrf_ok(request, request.headers.get(security.CSRF_HEADER)):
        return JSONResponse({"detail": "missing or wrong CSRF token"}, status_code=403)
    result = _apply_verdict(request, body.id, body.verdict, body.reviewer)
    return result if isinstance(result, Response) else JSONResponse(result)


@router.post("/verdict")
async def form_verdict(request: Request) -> Response:
    form = await request.form()
    if not security.csrf_ok(request, str(form.get("csrf_token", ""))):
        return JSONResponse({"detail": "missing or wrong CSRF token"}, status_code=403)
    defect_id = str(form.get("id", ""))
    if not ID_PATTERN.match(defect_id):
        return JSONResponse({"detail": "no such defect"}, status_code=404)
    verdict = str(form.get("verdict", "")) or None
    result = _apply_verdict(request, defect_id, verdict, str(form.get("reviewer", "")))
    if isinstance(result, Response):
        return result
    return RedirectResponse(security.safe_next(str(form.get("next", "/"))), 303)


@router.get("/login")
def login_page(request: Request) -> Response:
    target = security.safe_next(request.query_params.get("next"))
    return render(request, "login.html", {"next": target, "failed": False})


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    target = security.safe_next(str(form.get("next", "/")))
    policy: security.AccessPolicy = request.app.state.policy
    limiter: security.LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "?"
    wait = limiter.retry_after(client)
    if wait > 0:
        log.warning("review_login_throttled", client=client, retry_after_s=wait)
        context = {"next": target, "failed": False, "wait_s": math.ceil(wait)}
        response = render(request, "login.html", context, 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if policy.token is not None and not policy.token_ok(str(form.get("token", ""))):
        next_wait = limiter.failed(client)
        log.warning("review_login_failed", client=client, retry_after_s=next_wait)
        await asyncio.sleep(LOGIN_FAIL_DELAY_S)  # slows guessing down
        return render(request, "login.html", {"next": target, "failed": True}, 401)
    limiter.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        security.AUTH_COOKIE, policy.session_value, httponly=True, samesite="strict"
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.AUTH_COOKIE)
    return response
