"""The web app's defences, against a running cloud over real HTTP: requests another origin's
page makes a browser send are refused before any route runs (every state-changing route, and
the API's reads), forwarded headers are believed only from configured proxies (the sign-in
and claim limits count the real peer), a signed-out cookie stays refused (replayed, and after
a restart), the headers every answer carries, and who may read rejected payloads.

The browser half of the cross-origin defence (Chromium on a page served from another port
and from a sibling sub-domain) is tests/e2e/test_cross_origin.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from base64 import b64encode
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner

from cloud.access.claims import ADDRESS_FAILURES as CLAIM_ADDRESS_FAILURES
from cloud.access.claims import new_code
from cloud.access.sign_in import PAIR_FAILURES
from cloud.web import alarms as alarms_api
from cloud.web.app import PAGES, create_app
from cloud.web.openapi import document
from tests.cloud.conftest import (  # noqa: F401  (the `cloud` and `gw1` fixtures)
    PASSWORDS,
    Publisher,
    RunningCloud,
    cloud,
    cloud_settings,
    end_session,
    eventually,
    forget_gateway_status,
    gw1,
    rejections_kept,
    running_cloud,
    signed_in,
)
from tests.security.conftest import Certs
from tests.security.helpers import trusting
from tests.servers import Mosquitto

FOREIGN = "https://evil.example"


def other_port(url: str) -> str:
    """The same host on another port: the same *site*, so a SameSite cookie still goes."""
    port = int(url.rsplit(":", 1)[1])
    return f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"


def refused_as_cross_origin(resp: httpx.Response) -> bool:
    return resp.status_code == 403 and resp.json().get("reason") == "cross_origin"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
async def admin(cloud: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(cloud.url, "adm")
    yield client
    await client.aclose()


async def audit_count(client: httpx.AsyncClient, action: str) -> int:
    resp = await client.get("/api/audit", params={"limit": 1000})
    resp.raise_for_status()
    return sum(1 for entry in resp.json() if entry["action"] == action)


# ---- cross-origin requests ------------------------------------------------------------------


async def test_every_state_changing_route_and_api_read_refuses_another_origin_before_it_runs(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    """As an admin's browser would send them from a page on another port of the same host:
    each state-changing route (sign-in and a gateway's claim too) and each API read is
    refused with the reason before any route runs; the pages stay open to links."""
    doc = document(create_app(cloud.cloud))
    routes = [
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"} and path != "/health"
    ]
    unsafe = [(m, p) for m, p in routes if m != "GET"]
    assert len(unsafe) > 30  # the app really was enumerated
    forged = {"Origin": other_port(cloud.url), "Sec-Fetch-Site": "same-site"}
    answered: dict[tuple[str, str], int] = {}
    for method, path in routes:
        resp = await admin.request(method, concrete(path), json={}, headers=forged)
        if not refused_as_cross_origin(resp):
            answered[(method, path)] = resp.status_code
    assert answered == {}
    detail = (await admin.post("/api/logout/everywhere", headers=forged)).json()["detail"]
    assert detail.startswith("跨站请求已拒绝") and "Cross-origin request refused" in detail
    assert "Sec-Fetch-Site: same-site" in detail

    # over plain HTTP to a host name browsers send no Sec-Fetch-Site: Origin, then Referer
    for headers in ({"Origin": other_port(cloud.url)}, {"Referer": f"{other_port(cloud.url)}/"}):
        assert refused_as_cross_origin(await admin.get("/api/alarms", headers=headers))
        assert refused_as_cross_origin(await admin.post("/api/rules/reload", headers=headers))

    # nothing happened: the admin's session (sign-out everywhere was among them) still works,
    # a script (no browser headers) reads the API, and every refusal was counted
    me = await admin.get("/api/me")
    assert me.json() == {"name": "adm", "role": "admin"}
    stats = (await admin.get("/api/stats")).json()
    assert stats["cross_origin_refused"] == len(routes) + 1 + 4
    # a monitor's health check, and a link from another site to a page, still work
    assert (await admin.get("/health", headers=forged)).status_code == 200
    for page in PAGES:
        resp = await admin.get(page, headers={"Sec-Fetch-Site": "cross-site"})
        assert resp.status_code == 200, page


async def test_each_browser_signal_is_read_and_scripts_without_one_still_work(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    """One body-less admin action (re-read the rules: audited each time it runs), sent with
    what each kind of browser, page or client puts in the request."""
    own, other = cloud.url, other_port(cloud.url)
    host = own.removeprefix("http://")
    cases: dict[str, tuple[dict[str, str], bool]] = {
        "the app's own page": ({"Origin": own, "Sec-Fetch-Site": "same-origin"}, True),
        "the app's page, an older browser (Origin only)": ({"Origin": own}, True),
        "the app's page behind a proxy that rewrites Host": (
            {"Origin": "https://duty.example.cn", "Sec-Fetch-Site": "same-origin"},
            True,
        ),
        "an older browser without Origin, from the app's page": (
            {"Referer": f"{own}/users"},
            True,
        ),
        "a script with its own cookie (no browser headers)": ({}, True),
        "a page on another port": ({"Origin": other, "Sec-Fetch-Site": "same-site"}, False),
        "a page on another site": ({"Origin": FOREIGN, "Sec-Fetch-Site": "cross-site"}, False),
        "a page on another port, older browser": ({"Origin": other}, False),
        "a sandboxed or no-referrer page (Origin: null)": ({"Origin": "null"}, False),
        "Sec-Fetch-Site alone": ({"Sec-Fetch-Site": "same-site"}, False),
        "an older browser without Origin, from another port": (
            {"Referer": f"{other}/attack.html"},
            False,
        ),
        "X-Forwarded-Proto from a peer that is no configured proxy": (
            {"Origin": f"https://{host}", "X-Forwarded-Proto": "https"},
            False,
        ),
    }
    before = await audit_count(admin, "rules_reloaded")
    outcomes = {}
    for name, (headers, _) in cases.items():
        resp = await admin.post("/api/rules/reload", headers=headers)
        outcomes[name] = resp.status_code == 200 and not refused_as_cross_origin(resp)
        assert resp.status_code in (200, 403), (name, resp.text)
    assert outcomes == {name: allowed for name, (_, allowed) in cases.items()}
    allowed = sum(allowed for _, allowed in cases.values())
    assert await audit_count(admin, "rules_reloaded") == before + allowed


async def test_a_sign_in_from_another_origin_is_refused_and_sets_no_cookie(
    cloud: RunningCloud,
) -> None:
    """Login CSRF: another origin's page signing the duty-room PC in as someone else."""
    credentials = {"username": "op", "password": PASSWORDS["op"]}
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as client:
        forged = {"Origin": other_port(cloud.url), "Sec-Fetch-Site": "same-site"}
        resp = await client.post("/api/login", json=credentials, headers=forged)
        assert refused_as_cross_origin(resp)
        assert "set-cookie" not in resp.headers and not client.cookies
        own = {"Origin": cloud.url, "Sec-Fetch-Site": "same-origin"}
        resp = await client.post("/api/login", json=credentials, headers=own)
        assert resp.status_code == 200 and "sc_session" in client.cookies


async def test_a_gateway_claims_without_browser_headers_and_a_browser_elsewhere_cannot(
    cloud: RunningCloud,
) -> None:
    body = {"code": new_code()}
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as client:
        # a gateway's plain client reaches the route (and is told the code is unknown)
        resp = await client.post("/api/provision/claim", json=body)
        assert resp.status_code == 403 and resp.headers["X-Claim-Error"] == "unknown"
        resp = await client.post("/api/provision/claim", json=body, headers={"Origin": FOREIGN})
        assert refused_as_cross_origin(resp) and "X-Claim-Error" not in resp.headers


async def test_configured_public_origins_and_a_trusted_proxy(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    """Behind a reverse proxy: an origin listed in SC_CLOUD_WEB_ORIGINS is allowed though the
    proxy rewrote Host; a proxy listed in SC_CLOUD_WEB_TRUSTED_PROXIES passes the scheme, so
    the app's own public https origin is recognised without being listed."""
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        web_origins=["https://duty.example.cn"],
        web_trusted_proxies=["127.0.0.1"],
        database=database_url,
    )
    async with running_cloud(settings) as running:
        client = await signed_in(running.url, "adm")
        try:
            cases = {
                "listed": ({"Origin": "https://duty.example.cn"}, True),
                "listed, upper case": ({"Origin": "HTTPS://DUTY.example.cn"}, True),
                "a sibling host": ({"Origin": "https://evil.example.cn"}, False),
                "listed host, plain http": ({"Origin": "http://duty.example.cn"}, False),
                "own origin as the proxy passes it": (
                    {
                        "Host": "duty.street.cn",
                        "X-Forwarded-Proto": "https",
                        "Origin": "https://duty.street.cn",
                    },
                    True,
                ),
            }
            outcomes = {}
            for name, (headers, _) in cases.items():
                resp = await client.post("/api/rules/reload", headers=headers)
                outcomes[name] = not refused_as_cross_origin(resp)
            assert outcomes == {name: allowed for name, (_, allowed) in cases.items()}
        finally:
            await client.aclose()
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


# ---- forwarded headers and the limits -------------------------------------------------------


async def test_forwarded_for_from_an_unconfigured_peer_does_not_escape_the_limits(
    cloud: RunningCloud,
) -> None:
    """By default no proxy is trusted: one loopback client sending a new X-Forwarded-For with
    every guess is still one client to the sign-in and the claim-code limits."""
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as client:
        codes = []
        for n in range(PAIR_FAILURES + 1):
            resp = await client.post(
                "/api/login",
                json={"username": "op", "password": "wrong-guess"},
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            )
            codes.append(resp.status_code)
        assert codes == [401] * PAIR_FAILURES + [429]

        claims = []
        for n in range(CLAIM_ADDRESS_FAILURES + 1):
            resp = await client.post(
                "/api/provision/claim",
                json={"code": new_code()},
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
            )
            claims.append(resp.status_code)
        assert claims == [403] * CLAIM_ADDRESS_FAILURES + [429]
    failures = await cloud.cloud.claims.failures()
    assert {f.client for f in failures} == {"127.0.0.1"}


async def sign_in_via(proxy: httpx.AsyncClient, client_address: str, password: str) -> int:
    resp = await proxy.post(
        "/api/login",
        json={"username": "op", "password": password},
        headers={"X-Forwarded-For": client_address},
    )
    return resp.status_code


async def test_a_configured_proxy_is_believed_so_each_client_behind_it_has_its_own_limit(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path, mosquitto, web_trusted_proxies=["127.0.0.0/8"], database=database_url
    )
    async with (
        running_cloud(settings) as running,
        httpx.AsyncClient(base_url=running.url, timeout=20) as proxy,
    ):
        guesses = [await sign_in_via(proxy, "203.0.113.7", "wrong") for _ in range(PAIR_FAILURES)]
        assert guesses == [401] * PAIR_FAILURES
        assert await sign_in_via(proxy, "203.0.113.7", PASSWORDS["op"]) == 429
        # the operator's PC behind the same proxy is another client, with its own limit
        assert await sign_in_via(proxy, "10.1.2.3", "wrong") == 401
        assert await sign_in_via(proxy, "10.1.2.3", PASSWORDS["op"]) == 200
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


# ---- signing out ----------------------------------------------------------------------------


async def test_a_signed_out_cookie_is_refused_when_replayed_also_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setattr(alarms_api, "KEEPALIVE_S", 0.2)  # the stream re-checks at once
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, database=database_url)

    async def replay(url: str, cookie: str) -> int:
        async with httpx.AsyncClient(base_url=url, timeout=20) as thief:
            return (
                await thief.get("/api/me", headers={"Cookie": f"sc_session={cookie}"})
            ).status_code

    async with running_cloud(settings) as first:
        leaving = await signed_in(first.url, "op")
        staying = await signed_in(first.url, "op")  # the same account on another PC
        copied = leaving.cookies["sc_session"]
        assert await replay(first.url, copied) == 200
        try:
            async with leaving.stream("GET", "/api/alarms/stream") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "event: snapshot"
                # sign out through another connection of the same browser session
                async with httpx.AsyncClient(base_url=first.url, timeout=20) as same:
                    same.cookies.set("sc_session", copied)
                    assert (await same.post("/api/logout")).status_code == 204

                async def drain() -> None:
                    async for _ in lines:
                        pass

                await asyncio.wait_for(drain(), timeout=10)  # the server closed the stream
            assert await replay(first.url, copied) == 401
            assert (await leaving.get("/api/me")).status_code == 401
            assert (await staying.get("/api/me")).status_code == 200
            kept = staying.cookies["sc_session"]
        finally:
            await leaving.aclose()
            await staying.aclose()
    async with running_cloud(settings) as second:
        assert await replay(second.url, copied) == 401
        assert await replay(second.url, kept) == 200
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


async def test_a_cookie_from_before_sessions_had_ids_must_sign_in_again(
    cloud: RunningCloud,
) -> None:
    """A cookie with the user and the account's key but no session id (made before this
    version) is refused: otherwise it could never be signed out on its own."""
    key = await cloud.cloud.users.session_key("op")
    data = b64encode(json.dumps({"user": "op", "key": key}).encode())
    cookie = TimestampSigner("test-secret").sign(data).decode()
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as old:
        resp = await old.get("/api/me", headers={"Cookie": f"sc_session={cookie}"})
        assert resp.status_code == 401


# ---- headers on every answer ----------------------------------------------------------------


async def test_every_answer_has_a_referrer_policy_and_the_api_is_never_stored(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as stranger:
        answers: dict[str, httpx.Response] = {
            "sign-in page": await stranger.get("/login"),
            "page, redirected": await stranger.get("/"),
            "script": await stranger.get("/static/board.js"),
            "health": await stranger.get("/health"),
            "API, refused": await stranger.get("/api/me"),
            "API, unknown": await stranger.get("/api/nothing-here"),
            "API, cross-origin refusal": await stranger.post(
                "/api/login", json={}, headers={"Origin": FOREIGN}
            ),
        }
    answers["API"] = await admin.get("/api/me")
    answers["OpenAPI"] = await admin.get("/openapi.json")
    answers["ledger export"] = await admin.get("/api/ledger/export.csv")
    async with admin.stream("GET", "/api/alarms/stream") as stream:
        answers["live stream"] = stream
    api = {"health", "API, refused", "API, unknown", "API, cross-origin refusal", "API"}
    api |= {"OpenAPI", "ledger export", "live stream"}
    for name, resp in answers.items():
        assert resp.headers.get("referrer-policy") == "same-origin", name
        assert "strict-transport-security" not in resp.headers, name  # development, plain HTTP
        if name in api:
            assert resp.headers.get_list("cache-control") == ["no-store"], name
        else:
            assert "no-store" not in resp.headers.get("cache-control", ""), name
    # static files stay cacheable: the browser may keep them and revalidate
    script = answers["script"]
    assert script.status_code == 200 and script.headers.get("etag")
    revalidated = await admin.get(
        "/static/board.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert revalidated.status_code == 304


@pytest.mark.parametrize("how", ["own certificate", "behind a TLS proxy", "plain HTTP"])
async def test_hsts_in_production_over_https_only(
    tmp_path: Path, mosquitto: Mosquitto, certs: Certs, how: str, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    choices: dict[str, dict[str, Any]] = {
        "own certificate": {
            "web_tls_cert_file": certs.files.cert,
            "web_tls_key_file": certs.files.key,
        },
        "behind a TLS proxy": {"web_behind_https": True},
        "plain HTTP": {},
    }
    extra = choices[how]
    settings = cloud_settings(
        tmp_path, mosquitto, environment="production", database=database_url, **extra
    )
    async with (
        running_cloud(settings) as running,
        httpx.AsyncClient(
            base_url=running.url, timeout=20, verify=trusting(certs.files.ca)
        ) as client,
    ):
        answers = [await client.get(path) for path in ("/login", "/health", "/api/me")]
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)
    expected = None if how == "plain HTTP" else "max-age=31536000"
    assert [a.headers.get("strict-transport-security") for a in answers] == [expected] * 3
    assert running.url.startswith("https://" if how == "own certificate" else "http://")


# ---- rejected payloads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "allowed"), [("op", False), ("sup", False), ("inst", False), ("adm", True)]
)
async def test_only_admins_read_the_raw_payloads_of_rejected_messages(
    cloud: RunningCloud, gw1: Publisher, user: str, allowed: bool
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", b"{x")
    await eventually(lambda: cloud.cloud.rejects.counts["malformed_json"] == 1)
    await eventually(lambda: rejections_kept(cloud, 1))
    client = await signed_in(cloud.url, user)
    try:
        resp = await client.get("/api/rejected")
        stats = await client.get("/api/stats")
    finally:
        await client.aclose()
    if allowed:
        assert resp.status_code == 200 and resp.json()[0]["payload"] == "{x"
    else:
        assert resp.status_code == 403
        assert "rejected" in resp.json()["detail"] and "{x" not in resp.text
    # the counts stay visible to everyone
    assert stats.status_code == 200 and stats.json()["rejected"]["malformed_json"] == 1
