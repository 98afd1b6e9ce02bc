"""Cross-site request forgery from the same site, in a real browser: an admin signed in to the
duty room visits a page served from another origin of the same site — another port of the
same host, or a sibling sub-domain — which makes Chromium send body-less POSTs (a form and
`fetch`), and an audited read, to the app. The cookie is `SameSite=Strict`, yet Chromium sends
it (the same site): each request must be refused and nothing may change; the same actions
from the app's own page still work.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Request, async_playwright, expect

from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HAVE_CHROMIUM,
    VIEWPORT,
    publish,
    sign_in,
)

#: Names under .test that Chromium resolves to loopback (no DNS here): app.duty.test and
#: evil.duty.test are two origins of one site, duty.test.
RESOLVE = "--host-resolver-rules=MAP *.duty.test 127.0.0.1"
#: What the forged page makes the browser do with the admin's cookie, in this order (the
#: sign-out everywhere last: were it obeyed, it would make the others fail for a wrong reason).
POSTS = ("/api/users/sup/disable", "/api/rules/reload", "/api/provision/gateways/gw-ld01/revoke")
ATTACK = """<!doctype html><meta charset="utf-8"><title>抽奖</title>
<form id="accept" method="POST" target="sink" action="{app}/api/alarms/{alarm}/accept"></form>
<iframe name="sink"></iframe>
<p id="done"></p>
<script>
const app = "{app}";
const post = (path) =>
  fetch(app + path, {{method: "POST", mode: "no-cors", credentials: "include"}}).catch(() => null);
async function run() {{
  for (const path of {posts}) await post(path);
  await new Promise((done) => {{
    const img = new Image();
    img.onload = img.onerror = done;
    img.src = app + "/api/alarms/{alarm}/resident";
  }});
  await new Promise((done) => {{
    document.querySelector("iframe").onload = done;
    document.getElementById("accept").submit();
  }});
  await post("/api/logout/everywhere");
  document.getElementById("done").textContent = "done";
}}
run();
</script>
"""


class OtherOrigin:
    """A plain web server on its own loopback port serving one page: another origin."""

    def __init__(self, page: str) -> None:
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
async def resolving_context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium as in conftest, resolving *.duty.test to this machine."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, RESOLVE],
            viewport=VIEWPORT,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
def other_origin_server() -> Iterator[list[OtherOrigin]]:
    servers: list[OtherOrigin] = []
    yield servers
    for server in servers:
        server.stop()


async def audit_actions(admin: httpx.AsyncClient) -> list[str]:
    resp = await admin.get("/api/audit", params={"limit": 1000})
    resp.raise_for_status()
    return [entry["action"] for entry in resp.json()]


@pytest.mark.parametrize(
    ("app_host", "attacker_host"),
    [("127.0.0.1", "127.0.0.1"), ("app.duty.test", "evil.duty.test")],
    ids=["another port", "a sibling sub-domain"],
)
async def test_a_page_of_another_origin_on_the_same_site_cannot_act_with_the_admins_cookie(
    cloud: RunningCloud,
    gw1: Publisher,
    resolving_context: BrowserContext,
    other_origin_server: list[OtherOrigin],
    app_host: str,
    attacker_host: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = int(cloud.url.rsplit(":", 1)[1])
    app = f"http://{app_host}:{port}"
    admin = await signed_in(cloud.url, "adm")  # the test's own view, a session of its own
    try:
        await cloud.cloud.credentials.issue("gw-ld01", "inst")
        await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
        (alarm,) = await eventually(lambda: _json(admin.get("/api/alarms")))

        page = resolving_context.pages[0]
        await sign_in(page, app, "adm")
        await expect(page.locator("#user")).to_contain_text("adm")
        # the board's own read of who lives where (audited) is done before the count
        await expect(page.locator("body")).to_have_attribute("data-glance-reads", "1")
        before = await audit_actions(admin)
        attacker = OtherOrigin(ATTACK.format(app=app, alarm=alarm["id"], posts=list(POSTS)))
        other_origin_server.append(attacker)
        elsewhere = f"http://{attacker_host}:{attacker.port}"
        sent: list[Request] = []  # what the other origin's page made the browser send the app
        page.on(
            "request",
            lambda r: (
                sent.append(r)
                if r.url.startswith(app) and r.headers.get("referer", "").startswith(elsewhere)
                else None
            ),
        )
        await page.goto(f"{elsewhere}/")
        await expect(page.locator("#done")).to_have_text("done")

        # the browser sent each and each was refused; the app saw the admin's cookie on every
        # one (the same site), and the browser's word that it came from another origin
        forged = [f"/api/alarms/{alarm['id']}/{what}" for what in ("resident", "accept")]
        expected = sorted([*POSTS, *forged, "/api/logout/everywhere"])
        assert sorted(r.url.removeprefix(app) for r in sent) == expected
        for request in sent:  # (the image's JSON answer is withheld from the page: no status)
            response = await request.response()
            assert response is None or response.status == 403, request.url
        refusals = [r.getMessage() for r in caplog.records if r.name == "cloud.web.cross_origin"]
        assert sorted(_path(message) for message in refusals) == expected
        for message in refusals:  # (over plain HTTP to a host name: no Sec-Fetch-Site)
            assert "session_cookie=yes" in message, message
            assert "Sec-Fetch-Site: same-site" in message or elsewhere in message, message

        # and nothing changed
        now = (await admin.get(f"/api/alarms/{alarm['id']}")).json()["alarm"]
        assert now["state"] == "active" and now["accepted_at"] is None
        accounts = {a["name"]: a for a in (await admin.get("/api/users")).json()}
        assert accounts["sup"]["disabled"] is False
        assert accounts["adm"]["sessions_ended_at"] is None
        credential = await cloud.cloud.credentials.info("gw-ld01")
        assert credential is not None and credential.revoked_at is None
        assert await audit_actions(admin) == before  # no reload, no resident read, nothing

        # the same actions from the app's own page work: still signed in, one click accepts
        await page.goto(f"{app}/")
        row = page.locator("#board tbody tr")
        await expect(row).to_have_count(1)
        await row.get_by_role("button", name="受理").click()
        await expect(row).to_contain_text("已受理")
        status = await page.evaluate(
            "fetch('/api/users/sup/disable', {method: 'POST'}).then((r) => r.status)"
        )
        assert status == 200
        now = (await admin.get(f"/api/alarms/{alarm['id']}")).json()["alarm"]
        assert now["state"] == "accepted" and now["accepted_by"] == "adm"
        accounts = {a["name"]: a for a in (await admin.get("/api/users")).json()}
        assert accounts["sup"]["disabled"] is True
    finally:
        await admin.aclose()


def _path(message: str) -> str:
    found = re.search(r"path=(\S+)", message)
    assert found is not None, message
    return found[1]


async def _json(request: Any) -> Any:
    resp = await request
    resp.raise_for_status()
    return resp.json()
