"""Duty-room accounts against a running cloud: sign-in limits that a burst cannot get around
and that a stranger cannot use to keep an operator out, sessions that end at once when an
admin disables an account, resets its password or signs it out everywhere, and the admins'
account management with its refusals (rights, the last admin, bad input)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.access.sign_in import ADDRESS_FAILURES, PAIR_FAILURES, WINDOW_S
from cloud.web import alarms as alarms_api
from tests.cloud.conftest import (
    PASSWORDS,
    RunningCloud,
    cloud_settings,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.servers import Mosquitto

NEW_PASSWORD = "night-shift-2027"


def client_from(base_url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from another loopback address (Linux routes all of
    127.0.0.0/8 to lo), as a second PC would: the cloud sees a different client address."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=20)


async def login(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post("/api/login", json={"username": user, "password": password})


@pytest.fixture
async def admin(cloud: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(cloud.url, "adm")
    yield client
    await client.aclose()


async def audit_actions(admin: httpx.AsyncClient) -> list[tuple[str, str, str]]:
    resp = await admin.get("/api/audit", params={"limit": 50})
    resp.raise_for_status()
    return [(e["actor"], e["action"], e["detail"]) for e in resp.json()]


# ---- sign-in limits -------------------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_gets_no_more_checks_than_the_limit(
    cloud: RunningCloud,
) -> None:
    async with httpx.AsyncClient(base_url=cloud.url, timeout=60) as client:
        answers = await asyncio.gather(*(login(client, "sup", "wrong-guess") for _ in range(20)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [401] * PAIR_FAILURES + [429] * (20 - PAIR_FAILURES)
        limited = next(r for r in answers if r.status_code == 429)
        assert "too many failed sign-ins" in limited.json()["detail"]
        assert 0 < int(limited.headers["Retry-After"]) <= WINDOW_S + 1
        # the right password from this address waits out the limit too
        right = await login(client, "sup", PASSWORDS["sup"])
        assert right.status_code == 429


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_operator_out(
    cloud: RunningCloud,
) -> None:
    attackers = [client_from(cloud.url, "127.0.0.2"), client_from(cloud.url, "127.0.0.3")]
    try:
        for attacker in attackers:
            codes = [(await login(attacker, "op", "guess")).status_code for _ in range(6)]
            assert codes == [401] * PAIR_FAILURES + [429]
        # the account is slowed down now, not locked: the operator at their PC signs in
        async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as own:
            resp = await login(own, "op", PASSWORDS["op"])
            assert resp.status_code == 200, resp.text
            assert (await own.get("/api/me")).json() == {"name": "op", "role": "operator"}
        # while the attacker's address stays locked for op, even with the right password
        assert (await login(attackers[0], "op", PASSWORDS["op"])).status_code == 429
        # and another account from that address is still open
        assert (await login(attackers[0], "sup", PASSWORDS["sup"])).status_code == 200
    finally:
        for attacker in attackers:
            await attacker.aclose()


async def test_one_address_trying_many_names_is_limited_as_a_whole(cloud: RunningCloud) -> None:
    sprayer = client_from(cloud.url, "127.0.0.4")
    try:
        names = [f"guess-{uuid.uuid4().hex[:8]}" for _ in range(ADDRESS_FAILURES + 5)]
        answers = await asyncio.gather(*(login(sprayer, name, "password1") for name in names))
        codes = sorted(r.status_code for r in answers)
        assert codes == [401] * ADDRESS_FAILURES + [429] * 5
        limited = next(r for r in answers if r.status_code == 429)
        assert "from this address" in limited.json()["detail"]
        assert (await login(sprayer, "op", PASSWORDS["op"])).status_code == 429
    finally:
        await sprayer.aclose()
    # other addresses are not affected
    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as own:
        assert (await login(own, "op", PASSWORDS["op"])).status_code == 200


async def test_failed_sign_ins_still_count_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, database=database_url)
    async with running_cloud(settings) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=20) as client:
            codes = [(await login(client, "op", "nope")).status_code for _ in range(PAIR_FAILURES)]
        assert codes == [401] * PAIR_FAILURES
    async with running_cloud(settings) as second:
        client = httpx.AsyncClient(base_url=second.url, timeout=20)
        try:
            assert (await login(client, "op", PASSWORDS["op"])).status_code == 429
        finally:
            await client.aclose()


# ---- sessions that end ----------------------------------------------------------------------


async def test_admin_creates_demotes_and_disables_an_account_and_its_session_ends_at_once(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    created = await admin.post(
        "/api/users", json={"name": "night1", "role": "supervisor", "password": NEW_PASSWORD}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "night1" and body["role"] == "supervisor"
    assert body["disabled"] is False and body["created_by"] == "adm"

    async with httpx.AsyncClient(base_url=cloud.url, timeout=20) as night:
        assert (await login(night, "night1", NEW_PASSWORD)).status_code == 200
        assert (await night.get("/api/rules")).status_code == 200  # supervisors read the rules

        demoted = await admin.put("/api/users/night1/role", json={"role": "operator"})
        assert demoted.status_code == 200 and demoted.json()["role"] == "operator"
        # the same session, at once: an operator may not read the rules
        assert (await night.get("/api/rules")).status_code == 403
        assert (await night.get("/api/me")).json() == {"name": "night1", "role": "operator"}

        disabled = await admin.post("/api/users/night1/disable")
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        me = await night.get("/api/me")
        assert me.status_code == 401
        page = await night.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        # signing in again is refused with the reason, once the password is right
        again = await login(night, "night1", NEW_PASSWORD)
        assert again.status_code == 403 and "disabled" in again.json()["detail"]
        assert (await login(night, "night1", "not-the-password")).status_code == 401

        enabled = await admin.post("/api/users/night1/enable")
        assert enabled.status_code == 200 and enabled.json()["disabled"] is False
        assert (await login(night, "night1", NEW_PASSWORD)).status_code == 200
        assert (await night.get("/api/me")).status_code == 200

    listed = (await admin.get("/api/users")).json()
    assert [a["name"] for a in listed] == sorted(["adm", "inst", "night1", "op", "sup"])
    assert all(set(a) == set(body) for a in listed)
    assert "hash" not in (await admin.get("/api/users")).text
    assert "session_key" not in (await admin.get("/api/users")).text

    actions = await audit_actions(admin)
    mine = [(actor, action) for actor, action, detail in actions if "name=night1" in detail]
    assert mine == [
        ("adm", "user.enabled"),
        ("adm", "user.disabled"),
        ("adm", "user.role_changed"),
        ("adm", "user.created"),
    ]


async def test_a_password_reset_ends_every_earlier_session(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    desk = await signed_in(cloud.url, "op")
    phone = await signed_in(cloud.url, "op")
    try:
        assert (await desk.get("/api/me")).status_code == 200
        reset = await admin.put("/api/users/op/password", json={"password": NEW_PASSWORD})
        assert reset.status_code == 200 and reset.json()["password_changed_at"] is not None
        assert (await desk.get("/api/me")).status_code == 401
        assert (await phone.get("/api/alarms")).status_code == 401
        assert (await login(desk, "op", PASSWORDS["op"])).status_code == 401
        assert (await login(desk, "op", NEW_PASSWORD)).status_code == 200
        assert (await desk.get("/api/me")).status_code == 200
        assert (await phone.get("/api/me")).status_code == 401  # still the old cookie
        # the admin who resets their own password stays signed in here
        own = await admin.put("/api/users/adm/password", json={"password": NEW_PASSWORD})
        assert own.status_code == 200
        assert (await admin.get("/api/me")).status_code == 200
    finally:
        await desk.aclose()
        await phone.aclose()
    actions = await audit_actions(admin)
    assert ("adm", "user.password_reset", "name=op (sessions ended)") in actions


async def test_sign_out_everywhere_by_an_admin_or_by_the_user(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    first = await signed_in(cloud.url, "sup")
    second = await signed_in(cloud.url, "sup")
    try:
        ended = await admin.delete("/api/users/sup/sessions")
        assert ended.status_code == 200 and ended.json()["sessions_ended_at"] is not None
        assert (await first.get("/api/me")).status_code == 401
        assert (await second.get("/api/me")).status_code == 401
        # the password still works: a fresh sign-in is a fresh session
        assert (await login(first, "sup", PASSWORDS["sup"])).status_code == 200
        assert (await login(second, "sup", PASSWORDS["sup"])).status_code == 200
        assert (await first.post("/api/logout/everywhere")).status_code == 204
        assert (await first.get("/api/me")).status_code == 401
        assert (await second.get("/api/me")).status_code == 401
        # a plain sign-out ends only this browser's session
        assert (await login(first, "sup", PASSWORDS["sup"])).status_code == 200
        assert (await login(second, "sup", PASSWORDS["sup"])).status_code == 200
        assert (await first.post("/api/logout")).status_code == 204
        assert (await first.get("/api/me")).status_code == 401
        assert (await second.get("/api/me")).status_code == 200
    finally:
        await first.aclose()
        await second.aclose()
    actions = await audit_actions(admin)
    assert ("adm", "user.sessions_ended", "name=sup") in actions
    assert ("sup", "user.sessions_ended", "name=sup") in actions


async def test_an_open_live_stream_ends_when_its_sessions_are_ended(
    cloud: RunningCloud, admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alarms_api, "KEEPALIVE_S", 0.2)  # re-check at once, not every 15 s
    operator = await signed_in(cloud.url, "op")
    try:
        async with operator.stream("GET", "/api/alarms/stream") as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: snapshot"
            assert (await admin.delete("/api/users/op/sessions")).status_code == 200

            async def drain() -> None:
                async for _ in lines:
                    pass

            await asyncio.wait_for(drain(), timeout=10)  # the server closed the stream
    finally:
        await operator.aclose()


# ---- rights and refusals --------------------------------------------------------------------


@pytest.mark.parametrize("user", ["op", "sup", "inst"])
async def test_only_admins_manage_accounts(cloud: RunningCloud, user: str) -> None:
    client = await signed_in(cloud.url, user)
    try:
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/users", None),
            ("POST", "/api/users", {"name": "x1", "role": "admin", "password": NEW_PASSWORD}),
            ("PUT", f"/api/users/{user}/role", {"role": "admin"}),
            ("PUT", "/api/users/adm/password", {"password": NEW_PASSWORD}),
            ("POST", "/api/users/adm/disable", None),
            ("POST", "/api/users/adm/enable", None),
            ("DELETE", "/api/users/adm/sessions", None),
        ]
        for method, path, body in calls:
            resp = await client.request(method, path, json=body)
            assert resp.status_code == 403, (method, path, resp.text)
            assert "cannot manage accounts" in resp.json()["detail"]
    finally:
        await client.aclose()
    async with httpx.AsyncClient(base_url=cloud.url) as anonymous:
        assert (await anonymous.get("/api/users")).status_code == 401
    # nothing changed: the admin still signs in, the user kept their role
    admin = await signed_in(cloud.url, "adm")
    try:
        roles = {a["name"]: a["role"] for a in (await admin.get("/api/users")).json()}
        assert "x1" not in roles and roles[user] != "admin"
    finally:
        await admin.aclose()


async def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    for method, path, body in [
        ("POST", "/api/users/adm/disable", None),
        ("PUT", "/api/users/adm/role", {"role": "operator"}),
    ]:
        resp = await admin.request(method, path, json=body)
        assert resp.status_code == 409 and "last active admin" in resp.json()["detail"]
    assert (await admin.get("/api/me")).json() == {"name": "adm", "role": "admin"}

    # with a second admin, the first may go; then the second is the last one
    created = await admin.post(
        "/api/users", json={"name": "adm2", "role": "admin", "password": NEW_PASSWORD}
    )
    assert created.status_code == 201
    second = httpx.AsyncClient(base_url=cloud.url, timeout=20)
    try:
        assert (await login(second, "adm2", NEW_PASSWORD)).status_code == 200
        assert (await second.post("/api/users/adm/disable")).status_code == 200
        assert (await admin.get("/api/me")).status_code == 401
        refused = await second.post("/api/users/adm2/disable")
        assert refused.status_code == 409
        # a disabled admin does not count: adm2 still cannot be demoted
        demote = await second.put("/api/users/adm2/role", json={"role": "supervisor"})
        assert demote.status_code == 409
        assert (await second.post("/api/users/adm/enable")).status_code == 200
        demote = await second.put("/api/users/adm2/role", json={"role": "supervisor"})
        assert demote.status_code == 200
    finally:
        await second.aclose()


async def test_bad_input_is_refused_with_a_reason(
    cloud: RunningCloud, admin: httpx.AsyncClient
) -> None:
    bad_new = [
        {"name": "night2", "role": "operator", "password": "short"},  # below the minimum
        {"name": "night2", "role": "janitor", "password": NEW_PASSWORD},  # no such role
        {"name": "night 2", "role": "operator", "password": NEW_PASSWORD},  # a space
        {"name": "a/b", "role": "operator", "password": NEW_PASSWORD},
        {"name": "", "role": "operator", "password": NEW_PASSWORD},
        {"name": "n" * 65, "role": "operator", "password": NEW_PASSWORD},
        {"name": "night2", "role": "operator", "password": NEW_PASSWORD, "admin": True},
        {"name": "night2", "role": "operator"},
    ]
    for body in bad_new:
        resp = await admin.post("/api/users", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["detail"], body
    short = await admin.post(
        "/api/users", json={"name": "night2", "role": "operator", "password": "short"}
    )
    assert "at least 10 characters" in short.text

    assert (await admin.put("/api/users/op/password", json={"password": "x"})).status_code == 422
    assert (await admin.put("/api/users/op/role", json={"role": "root"})).status_code == 422
    assert (await admin.post("/api/users/bad%20name/disable")).status_code == 422

    missing = await admin.post("/api/users/nobody/disable")
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
    taken = await admin.post(
        "/api/users", json={"name": "op", "role": "admin", "password": NEW_PASSWORD}
    )
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    # nothing was made or changed by the refused calls
    accounts = {a["name"]: a["role"] for a in (await admin.get("/api/users")).json()}
    assert accounts == {"adm": "admin", "inst": "installer", "op": "operator", "sup": "supervisor"}
    async with httpx.AsyncClient(base_url=cloud.url) as client:
        assert (await login(client, "op", PASSWORDS["op"])).status_code == 200
