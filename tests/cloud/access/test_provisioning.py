"""Claiming a gateway with a one-time code, against the real cloud and a real Mosquitto whose
password file the cloud keeps (tests/security/conftest.py): the bundle's credentials log in,
a code works once, expires, is voided by a newer one, wrong codes are limited per address and
for everyone, re-claiming rotates (the old password is refused by the broker), and only
installers and admins may ask for codes."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from cloud.access.claims import ADDRESS_FAILURES, GLOBAL_FAILURES, WINDOW_S
from cloud.access.credentials import IssuedCredential
from cloud.access.provisioning import BundleError, prepare
from cloud.settings import DEFAULT_SITE, CloudSettings
from contract.provisioning import CLAIM_ALPHABET, CLAIM_CODE_LENGTH, ProvisioningBundle
from contract.site import Site, load_site
from gateway.claim import store
from gateway.config_store import parse
from gateway.settings import GatewaySettings
from tests.cloud.conftest import RunningCloud, eventually, running_cloud, signed_in
from tests.security.conftest import (  # noqa: F401  (fixtures: a broker the cloud manages)
    broker,
    certs,
    managed,
    managed_settings,
)
from tests.security.helpers import Session, can_connect, open_session
from tests.servers import Mosquitto

CODE = re.compile(rf"^[{CLAIM_ALPHABET}]{{4}}-[{CLAIM_ALPHABET}]{{4}}$")


@pytest.fixture
async def installer(managed: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(managed.url, "inst")
    yield client
    await client.aclose()


def from_address(cloud: RunningCloud, address: str) -> httpx.AsyncClient:
    """A client without a session, connecting from another loopback address (127.0.0.0/8)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=cloud.url, transport=transport, timeout=10)


async def new_code(client: httpx.AsyncClient, gateway: str = "gw-ld01") -> str:
    resp = await client.post("/api/provision/codes", json={"gateway": gateway})
    assert resp.status_code == 201, resp.text
    code = resp.json()["code"]
    assert CODE.fullmatch(code), code
    return str(code)


async def claim(cloud: RunningCloud, code: str, address: str = "127.0.0.1") -> httpx.Response:
    async with from_address(cloud, address) as client:
        return await client.post("/api/provision/claim", json={"code": code})


async def test_a_claim_gives_credentials_the_broker_accepts_and_a_config_the_gateway_runs(
    managed: RunningCloud, broker: Mosquitto, installer: httpx.AsyncClient
) -> None:
    resp = await installer.post("/api/provision/codes", json={"gateway": "gw-ld01"})
    assert resp.status_code == 201
    issued = resp.json()
    ttl = managed.cloud.settings.claim_code_ttl_s
    assert issued["gateway"] == "gw-ld01" and issued["created_by"] == "inst"
    assert issued["ttl_s"] == ttl
    left = _seconds_until(issued["expires_at"])
    assert ttl - 30 < left <= ttl

    # the installer's list shows the pending code, not the code itself
    listing = {g["gateway"]: g for g in (await installer.get("/api/provision/gateways")).json()}
    assert listing["gw-ld01"]["pending_code"]["created_by"] == "inst"
    assert issued["code"] not in str(listing)
    assert listing["gw-ld01"]["building"] == "红星小区1栋"

    resp = await claim(managed, issued["code"].lower().replace("-", " "))  # as typed on a phone
    assert resp.status_code == 200, resp.text
    bundle = ProvisioningBundle.model_validate(resp.json())
    assert bundle.gateway == "gw-ld01"
    assert (bundle.broker.host, bundle.broker.port) == ("127.0.0.1", broker.port)
    assert bundle.broker.username == "gw-ld01"
    assert bundle.broker.ca_pem is None  # no SC_CLOUD_GATEWAY_MQTT_CA_FILE here

    # the config is what cmd/config carries: the gateway validates it as it would a push
    pushed = parse(bundle.config, "gw-ld01", source="bundle")
    registered = managed.cloud.registry.site.gateway("gw-ld01")
    assert [d.id for d in pushed.document.devices] == [d.id for d in registered.devices]
    assert set(pushed.document.models) == {d.model for d in registered.devices}
    # its site file holds its own building only, and nobody's personal data
    site = Site.model_validate(yaml.safe_load(bundle.site))
    assert [g.id for g in site.gateways] == ["gw-ld01"]
    assert [b.id for c in site.communities for g in c.grids for b in g.buildings] == ["ld-01"]
    for private in ("王秀英", "王建国", "139 0000", "8600 0101", "高血压", "李网格", "138 0000"):
        assert private not in resp.text

    # the password logs in at the real broker (the cloud rewrote its file and reloaded it)
    password = bundle.broker.password
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", password))

    # the state is visible to the installer, and audited with who made the code
    listing = {g["gateway"]: g for g in (await installer.get("/api/provision/gateways")).json()}
    assert listing["gw-ld01"]["pending_code"] is None
    assert listing["gw-ld01"]["credential"]["revoked_at"] is None
    assert listing["gw-ld01"]["last_claimed_at"] is not None
    audit = await managed.cloud.audit.recent(50)
    actions = [(e.actor, e.action) for e in audit]
    assert ("inst", "claim.code_created") in actions
    assert ("claim:inst", "credential.issue") in actions
    assert ("claim:inst", "claim.provisioned") in actions


async def test_a_code_works_once_and_reclaiming_rotates_the_credential(
    managed: RunningCloud, broker: Mosquitto, installer: httpx.AsyncClient
) -> None:
    code = await new_code(installer)
    first = await claim(managed, code)
    assert first.status_code == 200
    old = first.json()["broker"]["password"]
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", old))

    again = await claim(managed, code)
    assert again.status_code == 410
    assert again.headers["X-Claim-Error"] == "used"
    assert again.json()["detail"] == "claim code already used — ask for a new one"

    # the replacement box is claimed with a new code: new password, the old one is refused
    second = await claim(managed, await new_code(installer))
    assert second.status_code == 200
    new = second.json()["broker"]["password"]
    assert new != old
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", new))
    assert not await can_connect(broker.port, "gw-ld01", old)


async def test_a_new_code_voids_the_older_one(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    older = await new_code(installer)
    newer = await new_code(installer)
    resp = await claim(managed, older)
    assert resp.status_code == 410
    assert resp.headers["X-Claim-Error"] == "replaced"
    assert (await claim(managed, newer)).status_code == 200


async def test_an_expired_code_is_refused(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    code = await new_code(installer)
    ttl = managed.cloud.settings.claim_code_ttl_s
    managed.cloud.db.clock = lambda: time.time() + ttl + 1  # the installer came back too late
    resp = await claim(managed, code)
    assert resp.status_code == 410
    assert resp.headers["X-Claim-Error"] == "expired"
    assert resp.json()["detail"] == "claim code expired — ask for a new one"
    assert await managed.cloud.credentials.info("gw-ld01") is None  # nothing was issued


async def test_wrong_codes_are_refused_recorded_and_limited_per_address(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    good = await new_code(installer)
    guesses = [c for c in _codes(ADDRESS_FAILURES + 1) if c != good]
    for guess in guesses[:ADDRESS_FAILURES]:
        resp = await claim(managed, guess, "127.0.0.2")
        assert resp.status_code == 403
        assert resp.headers["X-Claim-Error"] == "unknown"
    # the limit: refused before the code is even looked at, the right one included
    for code in (guesses[ADDRESS_FAILURES], good):
        resp = await claim(managed, code, "127.0.0.2")
        assert resp.status_code == 429
        assert resp.headers["X-Claim-Error"] == "rate_limited"
        assert 0 < int(resp.headers["Retry-After"]) <= WINDOW_S + 1
    # another address is not blocked by this one's failures
    assert (await claim(managed, good, "127.0.0.3")).status_code == 200

    # every refusal is recorded with its address (supervisors and admins read them)
    admin = await signed_in(managed.url, "adm")
    try:
        failures = (await admin.get("/api/provision/failures")).json()
    finally:
        await admin.aclose()
    mine = [f for f in failures if f["client"] == "127.0.0.2"]
    assert len(mine) == ADDRESS_FAILURES
    assert {f["reason"] for f in mine} == {"unknown"}
    assert (await installer.get("/api/provision/failures")).status_code == 403


async def test_a_burst_of_simultaneous_guesses_gets_no_more_tries(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    await new_code(installer)
    async with from_address(managed, "127.0.0.5") as client:
        answers = await asyncio.gather(
            *(client.post("/api/provision/claim", json={"code": c}) for c in _codes(20))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [403] * ADDRESS_FAILURES + [429] * (20 - ADDRESS_FAILURES)


async def test_a_guess_spread_over_many_addresses_hits_the_global_limit(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    good = await new_code(installer)
    guesses = iter(c for c in _codes(GLOBAL_FAILURES + 1) if c != good)
    addresses = [f"127.0.1.{n}" for n in range(1, math.ceil(GLOBAL_FAILURES / 4) + 1)]
    made = 0
    for address in addresses:  # each stays under its own limit (4 < 5)
        for _ in range(4):
            if made == GLOBAL_FAILURES:
                break
            resp = await claim(managed, next(guesses), address)
            assert resp.status_code == 403
            made += 1
    assert made == GLOBAL_FAILURES
    resp = await claim(managed, good, "127.0.2.1")  # a fresh address, the right code
    assert resp.status_code == 429
    assert "lately" in resp.json()["detail"]


async def test_malformed_codes_count_as_failures(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    for bad in ("0000-0000", "ABC", "IIII-LLLL", "AAAA-AAAA-A"):
        resp = await claim(managed, bad, "127.0.0.4")
        assert resp.status_code == 422
        assert resp.headers["X-Claim-Error"] == "malformed"
    resp = await claim(managed, "", "127.0.0.4")  # not even a string of length ≥ 1
    assert resp.status_code == 422
    assert (await claim(managed, "AAAA-AAAB", "127.0.0.4")).status_code == 403
    assert (await claim(managed, "AAAA-AAAC", "127.0.0.4")).status_code == 429


async def test_junk_from_many_addresses_does_not_lock_everyone_out(
    managed: RunningCloud, installer: httpx.AsyncClient
) -> None:
    # malformed codes cannot guess anything: they count per address only
    addresses = [f"127.0.3.{n}" for n in range(1, GLOBAL_FAILURES // 4 + 3)]
    for address in addresses:
        for _ in range(4):
            assert (await claim(managed, "x", address)).status_code == 422
    resp = await claim(managed, await new_code(installer), "127.0.4.1")
    assert resp.status_code == 200, resp.text


async def test_a_claim_while_the_broker_is_down_keeps_the_code_for_another_try(
    managed: RunningCloud, broker: Mosquitto, installer: httpx.AsyncClient
) -> None:
    code = await new_code(installer)
    broker.stop()
    try:
        resp = await claim(managed, code)
        assert resp.status_code == 503
        assert resp.json()["detail"] == (
            "the broker could not be updated; try the same code again in a minute"
        )
    finally:
        broker.start()
    resp = await claim(managed, code)  # the same code, once the broker is back
    assert resp.status_code == 200, resp.text
    password = resp.json()["broker"]["password"]
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", password))


async def test_only_installers_and_admins_create_codes(managed: RunningCloud) -> None:
    async with httpx.AsyncClient(base_url=managed.url, timeout=10) as anonymous:
        resp = await anonymous.post("/api/provision/codes", json={"gateway": "gw-ld01"})
        assert resp.status_code == 401
        assert (await anonymous.get("/api/provision/gateways")).status_code == 401
    for user, expected in (("op", 403), ("sup", 403), ("adm", 201), ("inst", 201)):
        client = await signed_in(managed.url, user)
        try:
            resp = await client.post("/api/provision/codes", json={"gateway": "gw-ld01"})
            assert resp.status_code == expected, (user, resp.text)
            if expected == 403:
                assert resp.json()["detail"] == f"role {_role(user)} cannot provision gateways"
        finally:
            await client.aclose()
    inst = await signed_in(managed.url, "inst")
    try:
        resp = await inst.post("/api/provision/codes", json={"gateway": "gw-nowhere"})
        assert resp.status_code == 404
        assert resp.json()["detail"] == "no gateway 'gw-nowhere'"
        resp = await inst.post("/api/provision/codes", json={"gateway": "GW 1"})
        assert resp.status_code == 422
    finally:
        await inst.aclose()


def test_guessing_is_limited_long_before_the_keyspace_matters() -> None:
    """The arithmetic of docs/provisioning.md: at the global limit, all day every day, with
    (generously) 100 live codes at once, the chance of hitting one in a year."""
    keyspace = len(CLAIM_ALPHABET) ** CLAIM_CODE_LENGTH
    assert len(CLAIM_ALPHABET) == 31 and not set("0O1IL") & set(CLAIM_ALPHABET)
    assert math.log2(keyspace) > 39.5
    guesses_per_year = GLOBAL_FAILURES * (365 * 86400 / WINDOW_S)
    assert guesses_per_year < 2_000_000
    assert guesses_per_year * 100 / keyspace < 1e-3


# ---- helpers --------------------------------------------------------------------------------


def _codes(n: int) -> list[str]:
    """n distinct well-formed codes (guesses)."""
    out = []
    for i in range(n):
        digits = ""
        value = i + 12345
        for _ in range(CLAIM_CODE_LENGTH):
            digits += CLAIM_ALPHABET[value % len(CLAIM_ALPHABET)]
            value //= len(CLAIM_ALPHABET)
        out.append(f"{digits[:4]}-{digits[4:]}")
    return out


def _seconds_until(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() - time.time()


def _role(user: str) -> str:
    return {"op": "operator", "sup": "supervisor", "inst": "installer", "adm": "admin"}[user]


async def test_revoking_a_lost_gateway_cuts_it_off_until_it_is_claimed_again(
    managed: RunningCloud, broker: Mosquitto, installer: httpx.AsyncClient
) -> None:
    resp = await claim(managed, await new_code(installer))
    password = resp.json()["broker"]["password"]
    session = await eventually(lambda: _session_if_accepted(broker, password))
    try:
        resp = await installer.post("/api/provision/gateways/gw-ld01/revoke")
        assert resp.status_code == 200, resp.text
        assert resp.json()["revoked_at"] is not None and resp.json()["gateway"] == "gw-ld01"
        await eventually(session.gone.is_set)  # the connected box is cut off
        assert not await can_connect(broker.port, "gw-ld01", password)
    finally:
        await asyncio.to_thread(session.close)
    # history and bindings stay: a new claim brings the gateway back
    resp = await claim(managed, await new_code(installer))
    renewed = resp.json()["broker"]["password"]
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", renewed))
    assert (await installer.post("/api/provision/gateways/gw-nowhere/revoke")).status_code == 404
    operator = await signed_in(managed.url, "op")
    try:
        assert (await operator.post("/api/provision/gateways/gw-ld01/revoke")).status_code == 403
    finally:
        await operator.aclose()


async def _session_if_accepted(broker: Mosquitto, password: str) -> Session | None:
    session = await open_session(broker.port, "gw-ld01", password)
    if session.accepted:
        return session
    await asyncio.to_thread(session.close)
    return None


async def test_a_gateway_dropped_from_the_registry_loses_its_broker_account(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> None:
    site_file = tmp_path / "site.yaml"
    shutil.copy(DEFAULT_SITE, site_file)
    settings = managed_settings(tmp_path, broker, site_file=site_file, database=database_url)
    async with running_cloud(settings) as running:
        admin = await signed_in(running.url, "adm")
        try:
            password = (await claim(running, await new_code(admin, "gw-ld02"))).json()
            password = password["broker"]["password"]
            assert await eventually(lambda: can_connect(broker.port, "gw-ld02", password))
            # the street office's file no longer has gw-ld02; an admin re-imports it
            site = yaml.safe_load(site_file.read_text(encoding="utf-8"))
            site["gateways"] = [g for g in site["gateways"] if g["id"] != "gw-ld02"]
            site_file.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
            assert (await admin.post("/api/site/reimport")).status_code == 200
            info = await running.cloud.credentials.info("gw-ld02")
            assert info is not None and info.revoked_at is not None
            assert await eventually(lambda: _refused(can_connect(broker.port, "gw-ld02", password)))
            # and it can still be revoked by hand (nothing to do now, but not a 404)
            resp = await admin.post("/api/provision/gateways/gw-ld02/revoke")
            assert resp.status_code == 200
        finally:
            await admin.aclose()


async def _refused(connecting: Awaitable[bool]) -> bool:
    return not await connecting


@pytest.mark.parametrize(
    ("host", "ca", "says"),
    [
        (None, True, "SC_CLOUD_GATEWAY_MQTT_HOST must name the broker"),
        ("127.0.0.1", True, "SC_CLOUD_GATEWAY_MQTT_HOST must name the broker"),
        ("broker.community.lan", False, "SC_CLOUD_GATEWAY_MQTT_CA_FILE is not set"),
    ],
)
async def test_in_production_no_bundle_points_a_gateway_at_loopback_or_plain_mqtt(
    tmp_path: Path, host: str | None, ca: bool, says: str
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    settings = CloudSettings(
        environment="production",
        session_secret=SecretStr("s" * 32),
        mqtt_password=SecretStr("p"),
        gateway_mqtt_host=host,
        gateway_mqtt_ca_file=ca_file if ca else None,
    )
    site = load_site(DEFAULT_SITE)
    with pytest.raises(BundleError, match=says):
        await prepare(settings, site, "gw-ld01")
    good = settings.model_copy(
        update={"gateway_mqtt_host": "broker.community.lan", "gateway_mqtt_ca_file": ca_file}
    )
    prepared = await prepare(good, site, "gw-ld01")
    assert (prepared.host, prepared.ca_pem) == ("broker.community.lan", ca_file.read_text())


async def test_a_gateway_claimed_in_the_cluster_shape_knows_every_node(tmp_path: Path) -> None:
    """The bundle names every node and asks for commands at QoS 0 (docs/cluster.md); the
    gateway's env file carries both, and the agent's settings read them back."""
    nodes = ["mq1.community.lan:1883", "mq2.community.lan:1883", "mq3.community.lan:1884"]
    settings = CloudSettings(
        broker="rabbitmq", amqp_password=SecretStr("p"), gateway_mqtt_nodes=nodes
    )
    site = load_site(DEFAULT_SITE)
    prepared = await prepare(settings, site, "gw-ld01")
    credential = IssuedCredential(
        gateway="gw-ld01", username="gw-ld01", password="x" * 24, issued_at=datetime.now(UTC)
    )
    bundle = ProvisioningBundle.model_validate_json(prepared.bundle(credential).model_dump_json())
    assert (bundle.broker.host, bundle.broker.port) == ("mq1.community.lan", 1883)
    assert (bundle.broker.nodes, bundle.broker.command_qos) == (nodes, 0)

    pushed = parse(bundle.config, bundle.gateway, source="bundle")
    stored = store(bundle, pushed, state_dir=tmp_path / "state", secrets_dir=tmp_path / "etc")
    env = dict(
        line.split("=", 1) for line in stored.env_file.read_text().splitlines() if "=" in line
    )
    params = GatewaySettings(
        site=Path(env["SC_GW_SITE"]),
        gateway=env["SC_GW_GATEWAY"],
        broker_nodes=env["SC_GW_BROKER_NODES"],
        broker_command_qos=int(env["SC_GW_BROKER_COMMAND_QOS"]),
    ).broker_params()
    assert params.nodes == (
        ("mq1.community.lan", 1883),
        ("mq2.community.lan", 1883),
        ("mq3.community.lan", 1884),
    )
    assert params.command_qos == 0

    # in production a node the gateways cannot reach is refused, like a loopback host
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    production = settings.model_copy(
        update={
            "environment": "production",
            "session_secret": SecretStr("s" * 32),
            "gateway_mqtt_ca_file": ca_file,
            "gateway_mqtt_nodes": [*nodes[:2], "127.0.0.1:1883"],
        }
    )
    with pytest.raises(BundleError, match=r"127\.0\.0\.1"):
        await prepare(production, site, "gw-ld01")
