"""Per-gateway broker accounts issued by the cloud, against a real Mosquitto: who may connect,
rotation, revocation (a connected session is cut), other gateways undisturbed by reloads."""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
import subprocess
from collections.abc import Awaitable
from pathlib import Path

import pytest

from cloud.access.audit import Audit
from cloud.access.broker_accounts import render_acl
from cloud.access.credentials import (
    BrokerNotUpdated,
    GatewayCredentials,
    InvalidGateway,
    mosquitto_hash,
)
from cloud.db.database import Database
from tests.cloud.conftest import RunningCloud, eventually
from tests.security.conftest import broker_group
from tests.security.helpers import can_connect, open_session
from tests.servers import REPO, Mosquitto


async def test_anonymous_unknown_and_wrong_password_clients_are_refused(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    issued = await managed.cloud.credentials.issue("gw-ld01", "inst")
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", issued.password))

    assert not await can_connect(broker.port, None, None)  # anonymous
    assert not await can_connect(broker.port, "gw-nobody", "whatever")  # unknown
    assert not await can_connect(broker.port, "gw-ld01", issued.password + "x")  # wrong
    assert not await can_connect(broker.port, "gw-ld02", issued.password)  # another's


async def test_issued_password_works_and_other_gateways_stay_connected_through_reloads(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    credentials = managed.cloud.credentials
    second = await credentials.issue("gw-ld02", "inst")
    await eventually(lambda: can_connect(broker.port, "gw-ld02", second.password))
    staying = await open_session(broker.port, "gw-ld02", second.password)
    assert staying.accepted
    watcher = await open_session(broker.port, "cloud", broker.users["cloud"])
    assert watcher.subscribe("sc/v1/gw-ld02/#")[0].value == 1
    try:
        first = await credentials.issue("gw-ld01", "inst")  # a new account: a reload
        assert await eventually(lambda: can_connect(broker.port, "gw-ld01", first.password))
        rotated = await credentials.issue("gw-ld01", "inst")  # rotated: another reload
        await credentials.revoke("gw-ld01", "adm")  # and another
        await eventually(lambda: not_(can_connect(broker.port, "gw-ld01", rotated.password)))

        # gw-ld02 never noticed: still connected, and what it sends still gets through
        assert not staying.gone.is_set()
        await asyncio.to_thread(staying.publish, "sc/v1/gw-ld02/reply", b"still here")
        topic, payload = await asyncio.to_thread(watcher.next_message)
        assert (topic, payload) == ("sc/v1/gw-ld02/reply", b"still here")
    finally:
        staying.close()
        watcher.close()


async def test_reissuing_rotates_and_cuts_the_old_session(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    credentials = managed.cloud.credentials
    old = await credentials.issue("gw-ld01", "inst")
    await eventually(lambda: can_connect(broker.port, "gw-ld01", old.password))
    session = await open_session(broker.port, "gw-ld01", old.password)
    assert session.accepted

    new = await credentials.issue("gw-ld01", "inst")
    assert new.password != old.password

    await eventually(session.gone.is_set)  # the session on the old password is cut
    assert await eventually(lambda: can_connect(broker.port, "gw-ld01", new.password))
    assert not await can_connect(broker.port, "gw-ld01", old.password)
    session.close()


async def test_a_revoked_credential_stops_working_and_its_session_is_cut(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    credentials = managed.cloud.credentials
    issued = await credentials.issue("gw-ld01", "inst")
    await eventually(lambda: can_connect(broker.port, "gw-ld01", issued.password))
    session = await open_session(broker.port, "gw-ld01", issued.password)
    assert session.accepted

    await credentials.revoke("gw-ld01", "adm")

    await eventually(session.gone.is_set)
    assert not await can_connect(broker.port, "gw-ld01", issued.password)
    session.close()
    info = await credentials.info("gw-ld01")
    assert info is not None and info.revoked_at is not None and info.issued_by == "inst"
    audit = await managed.cloud.audit.recent()
    assert [(e.actor, e.action) for e in audit[:2]] == [
        ("adm", "credential.revoke"),
        ("inst", "credential.issue"),
    ]


async def test_the_generated_files_hold_no_password_and_the_broker_can_read_them(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    issued = await managed.cloud.credentials.issue("gw-ld01", "inst")
    text = broker.passwd_file.read_text()
    assert issued.password not in text
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert set(lines) == {"cloud", "gw-ld01"}  # the service account is kept
    assert lines["gw-ld01"].startswith("$7$101$")
    for path in (broker.passwd_file, broker.acl_file):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == broker_group()
    assert broker.acl_file.read_text() == render_acl("cloud")
    stored = await managed.cloud.db.fetch_all("SELECT * FROM gateway_credentials")
    assert issued.password not in repr([tuple(row) for row in stored])


async def not_(check: Awaitable[bool]) -> bool:
    return not await check


def test_the_shipped_acl_is_what_the_cloud_generates() -> None:
    assert (REPO / "deploy" / "mosquitto" / "acl").read_text() == render_acl("cloud")


def test_hashes_match_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "gw-x", "s3cret"], check=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "gw-x"
    salt = base64.b64decode(hashed.split("$")[3])
    assert mosquitto_hash("s3cret", salt=salt) == hashed


async def test_without_broker_files_credentials_are_recorded_with_a_warning(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = await Database.open(database_url)
    try:
        credentials = GatewayCredentials(db, Audit(db), None)
        with caplog.at_level(logging.WARNING, logger="cloud.access.credentials"):
            issued = await credentials.issue("gw-ld01", "inst")
        assert "no broker is managed" in caplog.text
        await credentials.revoke("gw-ld01", "adm")
        (info,) = await credentials.all()
        assert (info.gateway, info.username, info.revoked_at is not None) == (
            "gw-ld01",
            "gw-ld01",
            True,
        )
        assert issued.username == "gw-ld01"
        with pytest.raises(InvalidGateway, match="service account"):
            await credentials.issue("cloud", "inst")
        with pytest.raises(InvalidGateway, match="not a gateway id"):
            await credentials.issue("gw/+", "inst")
    finally:
        await db.close()


async def test_a_revocation_while_the_broker_is_down_holds_when_it_comes_back(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    credentials = managed.cloud.credentials
    issued = await credentials.issue("gw-ld01", "inst")
    await eventually(lambda: can_connect(broker.port, "gw-ld01", issued.password))
    broker.stop()

    with pytest.raises(BrokerNotUpdated, match="not reloaded"):
        await credentials.revoke("gw-ld01", "adm")

    info = await credentials.info("gw-ld01")
    assert info is not None and info.revoked_at is not None  # recorded all the same
    broker.start()  # reads the files the cloud wrote
    assert not await can_connect(broker.port, "gw-ld01", issued.password)
    assert await can_connect(broker.port, "cloud", broker.users["cloud"])


async def test_service_accounts_are_kept_by_hand_and_merged_in(
    managed: RunningCloud, broker: Mosquitto
) -> None:
    service = broker.workdir / "service-passwd"
    subprocess.run(["mosquitto_passwd", "-b", str(service), "monitor", "m0n"], check=True)

    with pytest.raises(InvalidGateway, match="service account"):
        await managed.cloud.credentials.issue("monitor", "inst")  # no gateway may take it

    issued = await managed.cloud.credentials.issue("gw-ld01", "inst")  # the next change
    assert await eventually(lambda: can_connect(broker.port, "monitor", "m0n"))
    assert await can_connect(broker.port, "gw-ld01", issued.password)
    assert await can_connect(broker.port, "cloud", broker.users["cloud"])
