"""Refusals the domain services raise, as the web app answers them (cloud/web/errors.py maps
them once): the status, the reason, and that nothing was done that the refusal says was not —
a maintenance window is not ended as a walk test, a claim that cannot be served keeps its
code, a revocation the broker did not hear of is still recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.cloud.conftest import RunningCloud, cloud_settings, running_cloud, signed_in
from tests.security.conftest import (  # noqa: F401  (fixtures: a broker the cloud manages)
    broker,
    certs,
    managed,
    managed_settings,
)
from tests.servers import Mosquitto


async def _audit(url: str, action: str) -> list[dict[str, Any]]:
    admin = await signed_in(url, "adm")
    try:
        resp = await admin.get("/api/audit", params={"action": action})
        assert resp.status_code == 200, resp.text
        return list(resp.json())
    finally:
        await admin.aclose()


async def test_walk_test_routes_refuse_a_maintenance_window_and_unknown_devices(
    cloud: RunningCloud,
) -> None:
    supervisor = await signed_in(cloud.url, "sup")
    installer = await signed_in(cloud.url, "inst")
    now = datetime.now(UTC)
    plan = {
        "gateway": "gw-ld01",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
    try:
        made = await supervisor.post("/api/maintenance", json=plan)
        assert made.status_code == 201, made.text
        window_id = made.json()["id"]
        for method, path in (("POST", "end"), ("GET", "live")):
            resp = await installer.request(method, f"/api/walktests/{window_id}/{path}")
            assert (resp.status_code, resp.json()) == (
                404,
                {"detail": f"#{window_id} is not a walk test"},
            )
        # the window was not ended by the refused request
        (still,) = [
            w for w in (await supervisor.get("/api/maintenance")).json() if w["id"] == window_id
        ]
        assert still["ended_at"] is None

        unknown = await installer.post(
            "/api/walktests", json={"gateway": "gw-ld01", "devices": ["nope"]}
        )
        assert (unknown.status_code, unknown.json()) == (
            422,
            {"detail": "not devices of gw-ld01: ['nope']"},
        )
        missing = await installer.post("/api/walktests", json={"gateway": "gw-x"})
        assert (missing.status_code, missing.json()) == (404, {"detail": "no gateway 'gw-x'"})
        assert (await installer.get("/api/walktests")).json() == []  # none was started
    finally:
        await supervisor.aclose()
        await installer.aclose()


async def test_residents_of_an_unknown_home_are_refused_and_a_read_is_audited(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    resp = await operator.get("/api/site/homes/h-nope/residents")
    assert (resp.status_code, resp.json()) == (404, {"detail": "unknown home h-nope"})
    assert await _audit(cloud.url, "resident_data_read") == []
    resp = await operator.get("/api/site/homes/h-01-0101/residents")
    assert resp.status_code == 200 and resp.json()["home"] == "h-01-0101"
    (entry,) = await _audit(cloud.url, "resident_data_read")
    assert (entry["actor"], entry["detail"]) == ("op", "home h-01-0101")


async def test_a_claim_that_cannot_be_served_is_a_conflict_and_keeps_its_code(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    ca_file = tmp_path / "gateway-ca.pem"  # configured, but not there yet
    settings = cloud_settings(
        tmp_path, mosquitto, gateway_mqtt_ca_file=ca_file, database=database_url
    )
    async with running_cloud(settings, with_broker=False) as running:
        installer = await signed_in(running.url, "inst")
        try:
            made = await installer.post("/api/provision/codes", json={"gateway": "gw-ld01"})
            assert made.status_code == 201, made.text
            code = made.json()["code"]
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as gateway:
                refused = await gateway.post("/api/provision/claim", json={"code": code})
                assert refused.status_code == 409
                assert "cannot read SC_CLOUD_GATEWAY_MQTT_CA_FILE" in refused.json()["detail"]
                (failed,) = await _audit(running.url, "claim.failed")
                assert failed["actor"] == "claim:inst" and "gateway=gw-ld01" in failed["detail"]
                # nothing was issued: once the cause is mended the same code works
                gateways = (await installer.get("/api/provision/gateways")).json()
                assert {g["gateway"]: g["credential"] for g in gateways}["gw-ld01"] is None
                ca_file.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
                served = await gateway.post("/api/provision/claim", json={"code": code})
            assert served.status_code == 200, served.text
            assert served.json()["broker"]["ca_pem"] == "-----BEGIN CERTIFICATE-----\n"
        finally:
            await installer.aclose()


async def test_a_revocation_the_broker_did_not_hear_of_is_unavailable_but_recorded(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    installer = await signed_in(managed.url, "inst")
    try:
        code = (await installer.post("/api/provision/codes", json={"gateway": "gw-ld01"})).json()
        async with httpx.AsyncClient(base_url=managed.url, timeout=10) as gateway:
            claimed = await gateway.post("/api/provision/claim", json={"code": code["code"]})
        assert claimed.status_code == 200, claimed.text
        broker.stop()
        try:
            resp = await installer.post("/api/provision/gateways/gw-ld01/revoke")
        finally:
            broker.start()
        assert resp.status_code == 503
        assert resp.json()["detail"].startswith(
            "revoked in the registry, but the broker could not be told yet: "
        )
        gateways = (await installer.get("/api/provision/gateways")).json()
        credential = {g["gateway"]: g["credential"] for g in gateways}["gw-ld01"]
        assert credential["revoked_at"] is not None
    finally:
        await installer.aclose()
