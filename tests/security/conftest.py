"""A Mosquitto whose accounts the cloud manages (password and ACL files, SIGHUP), with a TLS
listener whose certificates the tests make (trustme), and the real cloud against it."""

from __future__ import annotations

import grp
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from cloud.settings import CloudSettings
from tests.cloud.conftest import RunningCloud, cloud_settings, running_cloud
from tests.servers import Mosquitto, TlsFiles


@dataclass(frozen=True)
class Certs:
    files: TlsFiles  # the CA, and the server's certificate chain and key for 127.0.0.1/localhost
    other_ca: Path  # a CA that signed nothing of ours


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    (folder / "server.pem").write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return Certs(
        files=TlsFiles(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server.key"),
        other_ca=folder / "other-ca.pem",
    )


def broker_group() -> int:
    try:
        return grp.getgrnam("mosquitto").gr_gid if os.geteuid() == 0 else os.getegid()
    except KeyError:
        return os.getegid()


@pytest.fixture
def broker(certs: Certs) -> Iterator[Mosquitto]:
    """A broker with only the cloud's service account, files as deployed: the generated
    password and ACL files mode 0640 in the broker's group, the service accounts apart."""
    server = Mosquitto(tls=certs.files)
    server.add_user("cloud")
    shutil.copy(server.passwd_file, server.workdir / "service-passwd")
    server.start()
    for path in (server.passwd_file, server.acl_file):
        os.chown(path, -1, broker_group())
        path.chmod(0o640)
    yield server
    server.cleanup()


def managed_settings(tmp: Path, broker: Mosquitto, **overrides: Any) -> CloudSettings:
    return cloud_settings(
        tmp,
        broker,
        broker_passwd_file=broker.passwd_file,
        broker_acl_file=broker.acl_file,
        broker_service_passwd_file=broker.workdir / "service-passwd",
        broker_pid_file=broker.pid_file,
        **overrides,
    )


@pytest.fixture
async def managed(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> AsyncIterator[RunningCloud]:
    """The real cloud keeping `broker`'s accounts, consuming over plain MQTT (once on each
    database backend)."""
    settings = managed_settings(tmp_path, broker, database=database_url)
    async with running_cloud(settings) as running:
        yield running
