"""The duty-room web app: `create_app(cloud)` builds it; nothing is created at import time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware

from cloud.parts import Cloud
from cloud.web import alarms, auth, errors, ledger, maintenance, rules, status
from cloud.web import devices as devices_api
from cloud.web import install as install_api
from cloud.web import site as site_api
from cloud.web import trends as trends_api
from cloud.web import users as users_api
from cloud.web.cross_origin import SESSION_COOKIE, CrossOriginGuard
from cloud.web.deps import CurrentUser, session_user
from cloud.web.openapi import document
from cloud.web.security_headers import SecurityHeadersMiddleware

STATIC = Path(__file__).resolve().parent / "static"
#: The pages (static files that call the API); each needs a session, the API checks the role.
PAGES = {
    "/": "board.html",
    "/ledger": "ledger.html",
    "/report": "report.html",
    "/devices": "devices.html",
    "/trends": "trends.html",
    "/site": "site.html",
    "/install": "install.html",
    "/users": "users.html",
}


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        if await session_user(request, request.app.state.cloud) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / name)

    return page


def create_app(cloud: Cloud) -> FastAPI:
    settings = cloud.settings
    app = FastAPI(
        title="Smart community duty room / 街道值班室",
        version="1",
        description=(
            "Alarms from call buttons, smoke, gas and air sensors, for the duty room. Every "
            "route but /health, sign-in and a gateway's claim (its one-time code is the "
            "credential) needs a session; each checks the caller's role. A state-changing "
            "request (or an API read) that a browser sends from another origin's page is "
            "refused with 403 and reason cross_origin."
        ),
        # The document is served to signed-in users only (below); no CDN-hosted viewers.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.cloud = cloud
    errors.install(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="strict",
        https_only=settings.environment == "production",
    )
    # pages, scripts and JSON go compressed (a duty-room PC may sit on a thin line); the live
    # stream is left alone (Starlette never buffers text/event-stream), as are xlsx (a zip)
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, ledger.XLSX),
    )
    # a state-changing request (or an API read) sent from another origin's page is refused
    app.state.cross_origin = Counter[str]()
    app.add_middleware(
        CrossOriginGuard, trusted=settings.web_origins, counts=app.state.cross_origin
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts=settings.environment == "production"
        and (settings.web_tls_cert_file is not None or settings.web_behind_https),
    )
    app.include_router(status.router)
    app.include_router(auth.router)
    app.include_router(alarms.router)
    app.include_router(rules.router)
    app.include_router(maintenance.router)
    app.include_router(ledger.router)
    app.include_router(devices_api.router)
    app.include_router(trends_api.router)
    app.include_router(install_api.router)
    app.include_router(site_api.router)
    app.include_router(users_api.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(user: CurrentUser) -> JSONResponse:
        return JSONResponse(document(app))

    for path, page in PAGES.items():
        app.add_api_route(path, _page(page), methods=["GET"], include_in_schema=False)

    @app.get("/login", include_in_schema=False)
    async def login_page() -> Response:
        return FileResponse(STATIC / "login.html")

    return app
