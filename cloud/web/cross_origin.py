"""Refuse what a page of another origin makes the browser send (cross-site request forgery).

The session cookie is `SameSite=Strict`, which keeps it off requests from other *sites* only:
a page on another port or sub-domain of the same host is the same site, and its form or
`fetch` would reach the API with the operator's cookie. So every state-changing request
(POST, PUT, PATCH, DELETE, …, with a session or without: the sign-in too), and every request
to the API (`/api/…`, `/openapi.json`: some reads are audited, e.g. a resident's profile), is
checked for where the browser says it came from:

1. `Origin` is the app's own (the scheme and `Host` the request was addressed to) or one of
   `SC_CLOUD_WEB_ORIGINS` (the public address behind a proxy that rewrites `Host`): allowed.
2. `Sec-Fetch-Site`: `same-origin` or `none` (typed in by the user) is allowed, `same-site`
   and `cross-site` are refused. Current browsers send it to HTTPS and to localhost/127.0.0.1
   only — not to plain HTTP on a host name, where 3 decides.
3. Without it, any other `Origin` (`null` too) is refused; with no `Origin` either, the
   `Referer` must come from an allowed origin.
4. With none of the three it is not from a browser's page (a gateway's claim, a script with
   its own cookie, an address typed in): allowed.

Reads of the pages themselves (`GET /`, `/login`, …) stay open to links from anywhere.
No token: the app's pages send only `fetch` requests to their own origin, which carry
`Origin`, `Sec-Fetch-Site` (or at least a `Referer`: `Referrer-Policy: same-origin`) by
themselves, so nothing in the pages or the session changes; the same choice as Go's
`net/http.CrossOriginProtection`. What is left, over plain HTTP only (no `Sec-Fetch-Site`): a
same-site page that hides its `Referer` can still make an API *read* (e.g. an `<img>` of an
audited resident profile; the answer never reaches that page), and a browser too old to send
`Origin` on a form post could be made to post. Over HTTPS every current browser says where a
request came from.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud.settings import normal_origin

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: The session cookie's name (cloud/web/app.py): whether a refused request carried it is logged.
SESSION_COOKIE = "sc_session"
#: Sec-Fetch-Site values of a request the app's own page (or the user) made.
OWN_SITES = frozenset({"same-origin", "none"})


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/openapi.json"


def _origin(value: str) -> str | None:
    try:
        return normal_origin(value)
    except ValueError:
        return None  # "null", garbage


def own_origin(scheme: str, host: str | None) -> str | None:
    """The origin a request was addressed to (`Host`, and the scheme it came in with)."""
    return _origin(f"{scheme}://{host}") if host else None


def refusal(
    method: str, path: str, headers: Headers, own: str | None, trusted: Collection[str]
) -> str | None:
    """Why this request is refused as sent from another origin; None if it may go on."""
    if method.upper() in SAFE_METHODS and not is_api(path):
        return None
    allowed = {*trusted, own} - {None}
    sent_origin = headers.get("origin")
    if sent_origin is not None and _origin(sent_origin) in allowed:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site.lower() in OWN_SITES else f"Sec-Fetch-Site: {_shown(site)}"
    if sent_origin is not None:
        return f"Origin: {_shown(sent_origin)}"
    referer = headers.get("referer")
    if referer is not None:
        parts = urlsplit(referer)
        came_from = _origin(f"{parts.scheme}://{parts.netloc}")
        return None if came_from in allowed else f"Referer from {came_from or _shown(referer)}"
    return None


def _shown(value: str) -> str:
    """A header's value as it goes into the log and the answer: at most 200 characters."""
    return value if len(value) <= 200 else f"{value[:200]}…"


class CrossOriginGuard:
    """An ASGI middleware: answers 403 with the reason (and counts and logs it) before any
    route runs, so a refused request changes nothing."""

    def __init__(self, app: ASGIApp, *, trusted: Collection[str], counts: Counter[str]) -> None:
        self.app = app
        self.trusted = frozenset(trusted)
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        own = own_origin(scope.get("scheme", "http"), headers.get("host"))
        reason = refusal(scope["method"], scope["path"], headers, own, self.trusted)
        if reason is None:
            await self.app(scope, receive, send)
            return
        self.counts["refused"] += 1
        client = scope.get("client")
        log.warning(
            "cross-origin request refused method=%s path=%s own=%s %s session_cookie=%s client=%s",
            scope["method"],
            scope["path"],
            own,
            reason,
            "yes" if SESSION_COOKIE in cookie_parser(headers.get("cookie", "")) else "no",
            client[0] if client else "unknown",
        )
        response = JSONResponse(
            {
                "detail": f"跨站请求已拒绝：请求并非来自本系统的页面（{reason}）。"
                f" / Cross-origin request refused: not sent by this app's own pages ({reason}).",
                "reason": "cross_origin",
            },
            status_code=403,
        )
        await response(scope, receive, send)
