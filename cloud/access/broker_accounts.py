"""Mosquitto's password and ACL files, written from the gateway credentials and reloaded.

The password file Mosquitto reads (`broker_passwd_file`) is generated, never edited by hand:
the service accounts (the cloud's own, and any other) come from a static file kept with
`mosquitto_passwd` (`broker_service_passwd_file`), the gateway accounts from the cloud
database (cloud/access/credentials.py). The ACL file (`broker_acl_file`) is generated too: the
cloud account's rules and one pattern per gateway channel (user name = gateway id);
deploy/mosquitto/acl is exactly what `render_acl("cloud")` writes.

Both files are replaced atomically (a temporary file in the same folder, then a rename), mode
0640 and the group of the file they replace (or the folder's, when it is set-group-id), so a
Mosquitto that dropped to user `mosquitto` can read them. Then Mosquitto is sent SIGHUP: it
re-reads both files without dropping anyone, and - found by experiment with 2.0.11, see
docs/security.md - disconnects every connected client whose password no longer matches, so a
rotated or revoked gateway's session is cut while the others stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from cloud.access.credentials import BrokerAccount, BrokerAccounts, BrokerNotUpdated
from cloud.access.rabbit_accounts import RabbitAccounts
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)

FILE_MODE = 0o640

#: The gateway channels (contract/topics.py): a gateway publishes these under its own id.
GATEWAY_PUBLISHES = ("status", "event", "telemetry", "reply")

ACL_HEAD = """\
# Mosquitto ACL for the platform (used as-is by the test harness). The cloud writes exactly
# this when SC_CLOUD_BROKER_ACL_FILE is set (cloud/access/broker_accounts.py; docs/security.md).
# Each gateway logs in with its gateway id as user name and may publish only under its own
# subtree and read only its own commands. The cloud services have their own account.
"""


def render_acl(cloud_user: str) -> str:
    lines = [
        ACL_HEAD,
        "# cloud ingest / command sender",
        f"user {cloud_user}",
        "topic readwrite sc/v1/#",
        "topic read $SYS/broker/publish/messages/dropped",
        "topic read $SYS/broker/uptime",
        "topic read $SYS/broker/clients/connected",
        "",
        "# every gateway: its own subtree only (%u is the user name = gateway id)",
        *(f"pattern write sc/v1/%u/{channel}" for channel in GATEWAY_PUBLISHES),
        "pattern read sc/v1/%u/cmd/#",
    ]
    return "\n".join(lines) + "\n"


class BrokerFileError(BrokerNotUpdated):
    """The broker's files could not be read or written."""


class BrokerReloadError(BrokerNotUpdated):
    """The files are written but Mosquitto could not be signalled to reload them."""


def read_service_accounts(path: Path) -> dict[str, str]:
    """user → hash from a mosquitto_passwd file (blank lines and # comments skipped)."""
    accounts: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise BrokerFileError(f"cannot read the service accounts file {path}: {exc}") from exc
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise BrokerFileError(f"{path} line {number}: not `user:hash`")
        accounts[user] = hashed
    return accounts


def render_passwd(service: dict[str, str], gateways: list[BrokerAccount]) -> str:
    lines = [f"{user}:{hashed}" for user, hashed in service.items()]
    for account in gateways:
        if account.username in service:
            log.error(
                "gateway account %s clashes with a service account: left out", account.username
            )
            continue
        lines.append(f"{account.username}:{account.password_hash}")
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str, mode: int = FILE_MODE) -> bool:
    """Replace `path` with `text` (temporary file + rename); False if it already held it."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), mode)  # whatever the umask
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.fchown(out.fileno(), -1, path.stat().st_gid)  # keep the broker's group
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


@dataclass
class MosquittoFiles:
    """Keeps a Mosquitto's password and ACL files in step with the gateway credentials."""

    passwd_file: Path
    acl_file: Path
    service_passwd_file: Path
    cloud_user: str
    pid_file: Path | None = None

    def reserved(self) -> set[str]:
        """Names no gateway may take: the service accounts."""
        try:
            return set(read_service_accounts(self.service_passwd_file)) | {self.cloud_user}
        except BrokerFileError:
            return {self.cloud_user}

    async def apply(self, accounts: list[BrokerAccount], *, cut: list[str]) -> None:
        # `cut` needs nothing more here: Mosquitto drops the sessions whose password no longer
        # matches when it reloads (a dynamic-security broker would kick them by name).
        changed = await asyncio.to_thread(self._write, accounts)
        if changed or cut:
            self.reload()

    def _write(self, accounts: list[BrokerAccount]) -> bool:
        service = read_service_accounts(self.service_passwd_file)
        if self.cloud_user not in service:
            log.warning(
                "the cloud's own account %r is not in %s: the cloud cannot log in to the broker",
                self.cloud_user,
                self.service_passwd_file,
            )
        try:
            wrote_passwd = write_atomically(self.passwd_file, render_passwd(service, accounts))
            wrote_acl = write_atomically(self.acl_file, render_acl(self.cloud_user))
        except OSError as exc:
            raise BrokerFileError(f"cannot write the broker's files: {exc}") from exc
        return wrote_passwd or wrote_acl

    def reload(self) -> None:
        """SIGHUP to the pid in the pid file; without one, the reload is left to the system
        (deploy/systemd/sc-broker-reload.path)."""
        if self.pid_file is None:
            log.info("broker files written; no SC_CLOUD_BROKER_PID_FILE, so not signalled")
            return
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise BrokerReloadError(
                f"broker files written but Mosquitto not reloaded (pid file {self.pid_file}): {exc}"
            ) from exc
        log.info("broker reloaded (SIGHUP to %d)", pid)


def broker_accounts(settings: CloudSettings) -> BrokerAccounts | None:
    """The broker to keep in step: a RabbitMQ cluster through its management API
    (cloud/access/rabbit_accounts.py), Mosquitto's files, or None when the settings name
    neither."""
    if settings.broker == "rabbitmq" and settings.rabbitmq_management_urls:
        password = settings.amqp_password.get_secret_value() if settings.amqp_password else ""
        return RabbitAccounts(
            settings.rabbitmq_management_urls,
            settings.amqp_username,
            password,
            cloud_user=settings.amqp_username,
        )
    passwd, acl = settings.broker_passwd_file, settings.broker_acl_file
    if passwd is None and acl is None:
        return None
    if passwd is None or acl is None:
        raise ValueError("set both SC_CLOUD_BROKER_PASSWD_FILE and SC_CLOUD_BROKER_ACL_FILE")
    service = settings.broker_service_passwd_file
    if service is None:
        raise ValueError(
            "SC_CLOUD_BROKER_SERVICE_PASSWD_FILE must name the service accounts file (at least"
            " the cloud's own account) that is merged into the generated password file"
        )
    return MosquittoFiles(
        passwd_file=passwd,
        acl_file=acl,
        service_passwd_file=service,
        cloud_user=settings.mqtt_username or "cloud",
        pid_file=settings.broker_pid_file,
    )
