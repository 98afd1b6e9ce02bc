"""The shipped broker configuration (deploy/mosquitto/: sc.conf, then the TLS listener, then
the ACL the cloud generates) runs on the real Mosquitto with only paths and ports changed."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.conftest import eventually
from tests.security.conftest import Certs, broker_group
from tests.security.helpers import can_connect, open_session, trusting
from tests.servers import REPO, Mosquitto, _stop, free_ports

DEPLOY = REPO / "deploy" / "mosquitto"


@pytest.fixture
def shipped(certs: Certs) -> Iterator[Mosquitto]:
    broker = Mosquitto()  # for its folder, accounts and readiness check; its conf is ours
    broker.add_user("cloud")
    work = broker.workdir
    work.chmod(0o755)  # Mosquitto reads it as user mosquitto
    shutil.copy(REPO / "deploy" / "mosquitto" / "acl", broker.acl_file)
    for name, source in (("ca.pem", certs.files.ca), ("broker.pem", certs.files.cert)):
        shutil.copy(source, work / name)
    shutil.copy(certs.files.key, work / "broker.key")
    os.chown(work / "broker.key", -1, broker_group())
    (work / "broker.key").chmod(0o640)
    for path in (broker.passwd_file, broker.acl_file):
        os.chown(path, -1, broker_group())
        path.chmod(0o640)
    (work / "mosquitto.log").touch()
    (work / "mosquitto.log").chmod(0o666)
    broker.port, broker.tls_port = free_ports(2)
    text = (DEPLOY / "mosquitto.conf").read_text() + (DEPLOY / "tls.conf").read_text()
    for shipped_text, ours in (
        ("/etc/mosquitto/sc/", f"{work}/"),
        ("/etc/mosquitto/certs/", f"{work}/"),
        ("listener 1883 0.0.0.0", f"listener {broker.port} 127.0.0.1"),
        ("listener 8883 0.0.0.0", f"listener {broker.tls_port} 127.0.0.1"),
        ("persistence true", "persistence false"),
        ("/var/log/mosquitto/mosquitto.log", f"{work}/mosquitto.log"),
    ):
        assert shipped_text in text
        text = text.replace(shipped_text, ours)
    (work / "mosquitto.conf").write_text(text)
    broker.proc = subprocess.Popen(
        ["mosquitto", "-c", str(work / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        broker._wait_ready()
        yield broker
    finally:
        _stop(broker.proc)
        broker.cleanup()


async def test_the_shipped_configuration_serves_plain_and_tls_with_accounts(
    shipped: Mosquitto, certs: Certs, tmp_path: Path
) -> None:
    password = shipped.users["cloud"]
    assert await can_connect(shipped.port, "cloud", password)
    assert await can_connect(shipped.tls_port, "cloud", password, tls=trusting(certs.files.ca))
    assert not await can_connect(shipped.port, None, None)
    assert not await can_connect(shipped.tls_port, "cloud", "wrong", tls=trusting(certs.files.ca))
    # TLS 1.1 is refused by the broker (the client here would speak it: security level 0)
    old = trusting(certs.files.ca)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        await can_connect(shipped.tls_port, "cloud", password, tls=old)


async def test_no_client_can_take_over_another_accounts_session(
    shipped: Mosquitto, certs: Certs
) -> None:
    """A gateway that connects with the cloud's client id must not cut the cloud off (nor, with
    a clean session, erase what the broker queued for the cloud) — on either listener."""
    gateway_password = shipped.add_user("gw-ld01")
    shipped.reload()
    assert await eventually(lambda: can_connect(shipped.port, "gw-ld01", gateway_password))
    for port, tls in ((shipped.port, None), (shipped.tls_port, trusting(certs.files.ca))):
        cloud = await open_session(
            port, "cloud", shipped.users["cloud"], client_id="sc-cloud-ingest", tls=tls
        )
        try:
            assert cloud.accepted
            intruder = await open_session(
                port, "gw-ld01", gateway_password, client_id="sc-cloud-ingest", tls=tls
            )
            try:
                assert intruder.accepted  # it may connect — as itself
                # the cloud's session still works: a message goes round through the broker
                await asyncio.to_thread(cloud.subscribe, "sc/v1/probe/cmd/ping")
                await asyncio.to_thread(cloud.publish, "sc/v1/probe/cmd/ping", b"still here")
                topic, _ = await asyncio.to_thread(cloud.next_message, 5.0)
                assert topic == "sc/v1/probe/cmd/ping", f"the cloud was taken over ({port})"
                assert not cloud.gone.is_set()
            finally:
                await asyncio.to_thread(intruder.close)
        finally:
            await asyncio.to_thread(cloud.close)
