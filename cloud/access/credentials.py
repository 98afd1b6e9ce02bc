"""Per-gateway broker credentials: issued, rotated and revoked here, kept in the cloud database
(never the plaintext; only the hash the broker checks) and pushed to the broker.

A gateway logs in to the broker with its gateway id as user name (the broker's ACL grants by
user name) and a random password that is shown once, when it is issued. Issuing again rotates
the password (the old one stops working); revoking removes the account from the broker and cuts
a connected session. Every issue and revoke goes to the audit.

The broker side is a `BrokerAccounts` (cloud/access/broker_accounts.py): Mosquitto's password
and ACL files, rewritten and reloaded, or nothing (the demo's embedded broker), in which case the
credentials are still recorded and a warning says that no broker is managed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import secrets
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.db.database import Conn, Database, Row
from cloud.errors import Conflict
from cloud.times import from_epoch

log = logging.getLogger(__name__)

#: The same ids as contract.models.GatewayId; also safe in a password file and a topic.
GATEWAY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

#: As `mosquitto_passwd` writes them: PBKDF2-SHA512, 101 iterations, a 12-byte salt (Mosquitto
#: 2.0.11 refused a 16-byte one). The salt's bytes are printable (72 random bits) so that the
#: same hash could also be imported into EMQX, whose salt is a string (docs/security.md).
PBKDF2_ITERATIONS = 101


class IssuedCredential(BaseModel):
    gateway: str
    username: str
    password: str  # plaintext: shown once, never stored
    issued_at: datetime


class CredentialInfo(BaseModel):
    gateway: str
    username: str
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None


class BrokerAccount(BaseModel):
    """One gateway account as the broker needs it."""

    username: str
    password_hash: str  # Mosquitto's `$7$...` form
    #: RabbitMQ's form (`rabbit_password_hashing_sha256`); None for a credential issued before
    #: the cloud kept it
    rabbit_hash: str | None = None


class BrokerAccounts(Protocol):
    """The broker's view of the gateway accounts, replaced as a whole on every change."""

    def reserved(self) -> set[str]:
        """The broker's service accounts: names no gateway may take."""
        ...

    async def apply(self, accounts: list[BrokerAccount], *, cut: list[str]) -> None:
        """Make the broker accept exactly `accounts` (plus its own service accounts) and
        disconnect the sessions of the users in `cut` (rotated or revoked)."""
        ...


class BrokerNotUpdated(RuntimeError):
    """The change is recorded in the database, but the broker could not be told (its files,
    or its reload); the next change or the next start of the cloud tries again."""


class InvalidGateway(Conflict):
    """Not a gateway id, or a name reserved for a service account."""


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """The `$7$` hash Mosquitto 2 keeps in its password_file (what `mosquitto_passwd` writes)."""
    salt = secrets.token_urlsafe(9).encode() if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def rabbit_hash(password: str, *, salt: bytes | None = None) -> str:
    """The hash RabbitMQ keeps (`rabbit_password_hashing_sha256`, its default): base64 of a
    4-byte salt and SHA-256 of salt + password."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def new_password() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


class GatewayCredentials:
    def __init__(
        self,
        db: Database,
        audit: Audit,
        broker: BrokerAccounts | None,
        *,
        service_user: str | None = "cloud",
    ) -> None:
        self.db = db
        self.audit = audit
        self.broker = broker
        self.service_user = service_user  # the cloud's own broker account
        # One change at a time from database to broker, so the broker ends as the last write.
        self._sync = asyncio.Lock()

    async def _check(self, gateway: str) -> None:
        if not GATEWAY_ID.fullmatch(gateway):
            raise InvalidGateway(f"{gateway!r} is not a gateway id (a-z 0-9 _ -, 1-63)")
        reserved = {self.service_user}
        if self.broker is not None:
            reserved |= await asyncio.to_thread(self.broker.reserved)  # reads a file
        if gateway in reserved:
            raise InvalidGateway(f"{gateway!r} is the name of a service account")

    async def issue(self, gateway: str, actor: str) -> IssuedCredential:
        """A new random password for the gateway; any earlier one is revoked (and its session
        cut); the broker is updated before this returns (BrokerNotUpdated if it cannot be:
        the credential is recorded all the same)."""
        await self._check(gateway)
        password = new_password()
        hashed = await asyncio.to_thread(mosquitto_hash, password)
        rabbit = rabbit_hash(password)
        async with self._sync:
            now = self.db.clock()

            def issue(conn: Conn) -> bool:
                row = conn.execute(
                    "SELECT revoked_at FROM gateway_credentials WHERE gateway = ?", (gateway,)
                ).fetchone()
                rotated = row is not None and row["revoked_at"] is None
                conn.execute(
                    "INSERT INTO gateway_credentials (gateway, username, broker_hash,"
                    " rabbit_hash, issued_at, issued_by, revoked_at, revoked_by)"
                    " VALUES (?,?,?,?,?,?,NULL,NULL)"
                    " ON CONFLICT(gateway) DO UPDATE SET username = excluded.username,"
                    " broker_hash = excluded.broker_hash, rabbit_hash = excluded.rabbit_hash,"
                    " issued_at = excluded.issued_at, issued_by = excluded.issued_by,"
                    " revoked_at = NULL, revoked_by = NULL",
                    (gateway, gateway, hashed, rabbit, now, actor),
                )
                detail = f"gateway={gateway}" + (
                    " (rotated: the earlier one is revoked)" if rotated else ""
                )
                self.audit.add(conn, actor, "credential.issue", detail, now)
                return rotated

            rotated = await self.db.write(issue)
            await self._push(cut=[gateway] if rotated else [])
        log.info("credential issued gateway=%s by=%s rotated=%s", gateway, actor, rotated)
        return IssuedCredential(
            gateway=gateway,
            username=gateway,
            password=password,
            issued_at=from_epoch(now),
        )

    async def revoke(self, gateway: str, actor: str) -> None:
        """The gateway can no longer connect; a connected session is cut. Revoking a gateway
        without a live credential is recorded and otherwise does nothing. BrokerNotUpdated if
        the broker cannot be told (the revocation stands in the database, and in the broker's
        files when only the reload failed)."""
        await self._check(gateway)
        async with self._sync:
            now = self.db.clock()

            def revoke(conn: Conn) -> None:
                changed = (
                    conn.execute(
                        "UPDATE gateway_credentials SET revoked_at = ?, revoked_by = ?"
                        " WHERE gateway = ? AND revoked_at IS NULL",
                        (now, actor, gateway),
                    ).rowcount
                    > 0
                )
                detail = f"gateway={gateway}" + ("" if changed else " (had no live credential)")
                self.audit.add(conn, actor, "credential.revoke", detail, now)

            await self.db.write(revoke)
            await self._push(cut=[gateway])
        log.info("credential revoked gateway=%s by=%s", gateway, actor)

    async def revoke_missing(self, registered: set[str], actor: str) -> list[str]:
        """Revoke the live credential of every gateway no longer in the registry (a site
        listener: the broker must not keep an account the registry dropped)."""
        gone = [
            info.gateway
            for info in await self.all()
            if info.revoked_at is None and info.gateway not in registered
        ]
        for gateway in gone:
            await self.revoke(gateway, actor)
        return gone

    async def info(self, gateway: str) -> CredentialInfo | None:
        row = await self.db.fetch_one(
            "SELECT * FROM gateway_credentials WHERE gateway = ?", (gateway,)
        )
        return None if row is None else _info(row)

    async def all(self) -> list[CredentialInfo]:
        rows = await self.db.fetch_all("SELECT * FROM gateway_credentials ORDER BY gateway")
        return [_info(r) for r in rows]

    async def accounts(self) -> list[BrokerAccount]:
        """The live gateway accounts, as the broker must know them."""
        rows = await self.db.fetch_all(
            "SELECT username, broker_hash, rabbit_hash FROM gateway_credentials"
            " WHERE revoked_at IS NULL ORDER BY username"
        )
        return [
            BrokerAccount(
                username=r["username"], password_hash=r["broker_hash"], rabbit_hash=r["rabbit_hash"]
            )
            for r in rows
        ]

    async def sync(self) -> None:
        """Push the registry's accounts to the broker (at start-up: the files follow the
        database even if they were edited or lost meanwhile). A broker that cannot be
        reloaded now is logged, not raised: it reads the files when it starts."""
        async with self._sync:
            try:
                await self._push(cut=[])
            except BrokerNotUpdated as exc:
                log.error("%s", exc)

    async def _push(self, *, cut: list[str]) -> None:
        if self.broker is None:
            log.warning(
                "no broker is managed (SC_CLOUD_BROKER_PASSWD_FILE/ACL_FILE not set): gateway"
                " credentials are recorded but the broker is not told"
            )
            return
        await self.broker.apply(await self.accounts(), cut=cut)


def _info(row: Row) -> CredentialInfo:
    issued = from_epoch(row["issued_at"])
    assert issued is not None
    return CredentialInfo(
        gateway=row["gateway"],
        username=row["username"],
        issued_at=issued,
        issued_by=row["issued_by"],
        revoked_at=from_epoch(row["revoked_at"]),
    )
