"""Security headers. On every response: a Content-Security-Policy that lets the pages run only
the app's own scripts (no inline script, no on* handlers, no plugins, no framing), `nosniff` so
a browser never guesses a type, and `Referrer-Policy: same-origin` (no address of the app, with
its case numbers and filters, leaves it in a `Referer`). On the API's answers (cloud/web/
cross_origin.py `is_api`, and /health) `Cache-Control: no-store`, so no case, resident or
account is kept in a browser's or a proxy's cache; static files stay cacheable. In production
over HTTPS (the app's own certificate, or SC_CLOUD_WEB_BEHIND_HTTPS behind a TLS proxy)
`Strict-Transport-Security` too.

`same-origin` rather than `no-referrer`: under `no-referrer` a browser sends `Origin: null` on
the pages' own POSTs, and the cross-origin check reads `Origin`.

A plain ASGI middleware: it only edits the response's start message, so streamed responses
(the live board's event stream) pass as they are.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.web.cross_origin import is_api

#: uPlot sets element styles from script (CSSOM, which style-src does not govern); the pages
#: carry no inline style blocks or attributes, so styles too come only from the app itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
#: One year; not includeSubDomains: other hosts of the street office's domain are not ours.
HSTS = (b"strict-transport-security", b"max-age=31536000")
NO_STORE = (b"cache-control", b"no-store")


def no_store(path: str) -> bool:
    return is_api(path) or path == "/health"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = (*HEADERS, HSTS) if hsts else HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = no_store(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if private:  # the route's own Cache-Control (the stream's no-cache) gives way
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append(NO_STORE)
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
