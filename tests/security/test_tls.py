"""MQTT over TLS (the gateway agent and the cloud's ingest) and HTTPS (the web app and API),
with certificates made by the tests (trustme)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from cloud.settings import CloudSettings
from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.settings import GatewaySettings
from gateway.uplink_settings import BrokerParams
from tests.cloud.conftest import PASSWORDS, RunningCloud, eventually, running_cloud
from tests.conftest import DEMO_SITE
from tests.security.conftest import Certs, managed_settings
from tests.security.helpers import can_connect, open_session, trusting
from tests.servers import Mosquitto


@pytest.fixture
async def tls_cloud(
    tmp_path: Path, broker: Mosquitto, certs: Certs, database_url: str
) -> AsyncIterator[RunningCloud]:
    """The cloud consuming over MQTT/TLS and serving HTTPS, both with the test CA's certs."""
    settings = managed_settings(
        tmp_path,
        broker,
        mqtt_port=broker.tls_port,
        mqtt_tls_ca_file=certs.files.ca,
        web_tls_cert_file=certs.files.cert,
        web_tls_key_file=certs.files.key,
        database=database_url,
    )
    async with running_cloud(settings) as running:
        yield running


async def test_an_alarm_flows_end_to_end_over_mqtt_tls_and_https(
    tmp_path: Path, tls_cloud: RunningCloud, broker: Mosquitto, certs: Certs
) -> None:
    assert tls_cloud.url.startswith("https://")
    credential = await tls_cloud.cloud.credentials.issue("gw-ld01", "inst")
    await eventually(
        lambda: can_connect(
            broker.tls_port, "gw-ld01", credential.password, tls=trusting(certs.files.ca)
        )
    )
    agent = GatewayAgent(
        load_gateway_config(DEMO_SITE, "gw-ld01"),
        broker=BrokerParams(
            host="127.0.0.1",
            port=broker.tls_port,
            username="gw-ld01",
            password=credential.password,
            ca_file=certs.files.ca,
        ),
        outbox_path=tmp_path / "outbox.sqlite3",
        simulate=True,
        options=AgentOptions(heartbeat_s=3600, telemetry_period_s=0.3),
    )
    try:
        agent.start()
        assert await asyncio.to_thread(agent.wait_connected, 10)
        assert agent.hardware is not None
        await asyncio.to_thread(agent.hardware.press_call, "call-0101", 0.2)

        async with httpx.AsyncClient(
            base_url=tls_cloud.url, verify=trusting(certs.files.ca), timeout=10
        ) as duty:
            signed_in = await duty.post(
                "/api/login", json={"username": "op", "password": PASSWORDS["op"]}
            )
            assert signed_in.status_code == 200

            async def alarms() -> list[dict[str, object]]:
                return (await duty.get("/api/alarms")).json()

            (alarm,) = await eventually(alarms)
        assert (alarm["rule"], alarm["gateway"], alarm["device"]) == (
            "call_for_help",
            "gw-ld01",
            "call-0101",
        )
    finally:
        agent.stop()
        agent.close()


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    broker: Mosquitto, certs: Certs
) -> None:
    for context in (trusting(certs.other_ca), trusting(None)):
        with pytest.raises(ssl.SSLCertVerificationError):
            await open_session(broker.tls_port, "cloud", broker.users["cloud"], tls=context)
    # the right CA, the same account: accepted (so the refusals above were about trust)
    assert await can_connect(
        broker.tls_port, "cloud", broker.users["cloud"], tls=trusting(certs.files.ca)
    )


async def test_plain_mqtt_to_the_tls_port_fails(broker: Mosquitto) -> None:
    session = await open_session(broker.tls_port, "cloud", broker.users["cloud"])
    assert session.reason is None and session.gone.is_set()  # no CONNACK, connection closed
    session.close()
    assert await can_connect(broker.port, "cloud", broker.users["cloud"])  # plain port: fine


async def test_https_needs_the_ca(tls_cloud: RunningCloud, certs: Certs) -> None:
    async with httpx.AsyncClient(base_url=tls_cloud.url, timeout=10) as untrusting:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.get("/health")
    async with httpx.AsyncClient(
        base_url=tls_cloud.url, verify=trusting(certs.other_ca), timeout=10
    ) as wrong_ca:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await wrong_ca.get("/health")
    async with httpx.AsyncClient(
        base_url=tls_cloud.url, verify=trusting(certs.files.ca), timeout=10
    ) as trusting_client:
        assert (await trusting_client.get("/health")).status_code == 200
        denied = await trusting_client.get("/api/alarms")
        assert denied.status_code == 401  # TLS is no substitute for signing in


def test_the_gateway_reads_its_ca_file_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, certs: Certs
) -> None:
    monkeypatch.setenv("SC_GW_BROKER_CA_FILE", str(certs.files.ca))
    settings = GatewaySettings(site=DEMO_SITE, gateway="gw-ld01")
    assert settings.broker_params().ca_file == certs.files.ca
    monkeypatch.delenv("SC_GW_BROKER_CA_FILE")
    assert GatewaySettings(site=DEMO_SITE, gateway="gw-ld01").broker_params().ca_file is None


def test_a_web_key_without_its_certificate_is_refused(certs: Certs) -> None:
    with pytest.raises(ValidationError, match="WEB_TLS_KEY_FILE is set without"):
        CloudSettings(web_tls_key_file=certs.files.key)
