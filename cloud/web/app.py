"""The duty-room web app: `create_app(cloud)` builds it; nothing is created at import time.

The only module of the web app that knows the cloud's container (`cloud.parts.Cloud`): it
takes from it the services the routers use (`Services`, cloud/web/services.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware

from cloud.alarms.actions import CaseActions
from cloud.devices.drills import DrillIncidents
from cloud.devices.installation import Installation
from cloud.devices.trends import Trends
from cloud.devices.walk_test_report import WalkTestReports
from cloud.devices.windows import Windows
from cloud.duty.drill_report import DrillReports
from cloud.duty.grid_cases import GridCases
from cloud.ledger.service import XLSX, Ledger
from cloud.notify.receipts import CallResults
from cloud.parts import Cloud
from cloud.site.residents import ResidentReads
from cloud.web import (
    alarms,
    auth,
    duty,
    errors,
    grid,
    ledger,
    maintenance,
    metrics,
    receipts,
    rules,
    site_devices,
    site_import,
    site_residents,
    site_structure,
    status,
)
from cloud.web import devices as devices_api
from cloud.web import install as install_api
from cloud.web import simulator as simulator_api
from cloud.web import site as site_api
from cloud.web import trends as trends_api
from cloud.web import users as users_api
from cloud.web import voice as voice_api
from cloud.web.cross_origin import SESSION_COOKIE, CrossOriginGuard
from cloud.web.deps import CurrentUser, services, session_user
from cloud.web.openapi import document
from cloud.web.security_headers import SecurityHeadersMiddleware
from cloud.web.services import Services

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
    "/duty": "duty.html",
    "/grid": "grid.html",
    "/drills": "drills.html",
}


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        if await session_user(request, services(request).users) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / name)

    return page


def services_of(cloud: Cloud) -> Services:
    """The services the routers use, from the cloud's parts (with the few that only the web
    app asks for)."""
    windows = Windows(cloud.maintenance, cloud.registry, cloud.book)
    cases = CaseActions(
        cloud.casework,
        cloud.book,
        announce=cloud.announcer.changed,
        send_command=cloud.transport.send_command,
    )
    return Services(
        settings=cloud.settings,
        users=cloud.users,
        audit=cloud.audit,
        alarms=cloud.alarms,
        cases=cases,
        hush=cloud.hush,
        notifications=cloud.notifications,
        call_results=CallResults(cloud.db, cloud.notifications),
        residents=ResidentReads(cloud.registry, cloud.audit),
        hub=cloud.hub,
        link=cloud.ingest.link,
        ingest=cloud.ingest,
        announcer=cloud.announcer,
        escalator=cloud.escalator,
        rejects=cloud.rejects,
        book=cloud.book,
        store=cloud.store,
        reloader=cloud.reloader,
        windows=windows,
        drills=DrillIncidents(cloud.maintenance, cloud.audit, cloud.transport.send_command),
        walk_tests=WalkTestReports(windows, cloud.alarms, cloud.registry, cloud.store),
        drill_reports=DrillReports(cloud.maintenance, cloud.alarms, lambda: cloud.core.config),
        installation=Installation(
            settings=cloud.settings,
            registry=cloud.registry,
            claims=cloud.claims,
            credentials=cloud.credentials,
            audit=cloud.audit,
            book=cloud.book,
        ),
        health=cloud.health,
        trends=Trends(cloud.registry, cloud.store, lambda: cloud.core.config),
        ledger=Ledger(cloud.db, cloud.audit, cloud.registry, lambda: cloud.core.config),
        registry=cloud.registry,
        site=cloud.site,
        config_push=cloud.config_push,
        # the demo's simulator only where the settings allow one (never in production)
        simulator=cloud.simulator if cloud.settings.simulator else None,
        duty=cloud.duty,
        grid_cases=GridCases(cloud.db, cloud.duty.roster, cloud.registry, cases),
        voice=cloud.voice,
        peers=cloud.peers,
    )


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
    app.state.services = services_of(cloud)
    app.state.metrics = metrics.CloudMetrics()
    cloud.announcer.on_pushed = app.state.metrics.push_seconds.observe
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
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, XLSX),
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
    app.include_router(site_structure.router)
    app.include_router(site_residents.router)
    app.include_router(site_devices.router)
    app.include_router(site_import.router)
    app.include_router(users_api.router)
    app.include_router(voice_api.router)
    app.include_router(receipts.router)
    app.include_router(simulator_api.router)
    app.include_router(duty.router)
    app.include_router(grid.router)
    app.include_router(metrics.router)
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
