"""Duty-room accounts: roles, who may sign in, and the admins' changes to accounts (each
audited with who made it). Passwords are scrypt hashes (cloud/access/passwords.py); sign-in
limits are cloud/access/sign_in.py's, sessions and their ending cloud/access/sessions.py's.

Accounts from `SC_CLOUD_BOOTSTRAP_USERS` (name → [role, password or its scrypt hash]) are
created at start-up when they do not exist yet;
after that the admins manage them here (settings never overwrite an admin's change, and an
account dropped from the setting is left as it is: disable it through the API).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.access.passwords import (
    hash_password,
    is_hash,
    new_session_id,
    new_session_key,
    verify_password,
)
from cloud.access.sessions import EndedSessions, SessionRef
from cloud.access.sign_in import forgive_attempt, reserve_attempt, slow_down
from cloud.db.database import Conn, Database, Row
from cloud.errors import CloudError, Conflict, NotFound
from cloud.times import from_epoch

log = logging.getLogger(__name__)


class Role(StrEnum):
    OPERATOR = "operator"  # duty room: accepts and resolves cases
    SUPERVISOR = "supervisor"  # verifies, reads reports
    INSTALLER = "installer"  # provisions gateways; never sees resident data
    ADMIN = "admin"
    GRID_WORKER = "grid_worker"  # 网格员: only their own cases, on the phone page (/grid)


#: Roles that handle alarms at the duty room.
DUTY_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})

#: Passwords set through the API (bootstrap passwords come from the deployer's settings).
MIN_PASSWORD = 10
MAX_PASSWORD = 256


class User(BaseModel):
    name: str
    role: Role


class Account(BaseModel):
    """An account as the admins see it (never its password hash or session key)."""

    name: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str
    password_changed_at: datetime | None
    sessions_ended_at: datetime | None


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: the user and the new session to put in the cookie."""

    user: User
    session: SessionRef


@dataclass(frozen=True)
class _Entry:
    user: User
    disabled: bool
    session_key: str


class AccountDisabled(CloudError):
    """The password was right but an admin has disabled the account."""


class UnknownAccount(NotFound):
    """No account of that name."""


class AccountExists(Conflict):
    """An account of that name exists already."""


class LastAdmin(Conflict):
    """The change would leave no active admin."""


class Users:
    def __init__(self, db: Database, audit: Audit) -> None:
        self.db = db
        self.audit = audit
        # Every API request looks its user up: from memory, so authentication never queues
        # behind ingest's writes on the database. Accounts change only through this class,
        # which drops the changed entry once the change is committed.
        self._cache: dict[str, _Entry | None] = {}
        self._ended = EndedSessions(db)

    # ---- bootstrap --------------------------------------------------------------------------

    async def ensure(self, name: str, role: Role, password: str) -> bool:
        """Create the account if it does not exist yet (bootstrap from settings); an existing
        account is left as the admins made it (and its password is not even hashed). The
        password may be given as its hash (`passwords.is_hash`). True if it was created."""
        exists = await self.db.fetch_value("SELECT 1 FROM users WHERE name = ?", (name,))
        if exists is not None:
            return False
        hashed = password if is_hash(password) else await asyncio.to_thread(hash_password, password)
        now = self.db.clock()

        def ensure(conn: Conn) -> bool:
            cursor = conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, created_by,"
                " session_key) VALUES (?,?,?,?,?,?) ON CONFLICT(name) DO NOTHING",
                (name, role.value, hashed, now, "bootstrap", new_session_key()),
            )
            created = cursor.rowcount == 1
            if created:
                self.audit.add(
                    conn, "system", "user.created", f"name={name} role={role} (bootstrap)", now
                )
            return created

        created = await self.db.write(ensure)
        self._cache.pop(name, None)
        return created

    # ---- sign-in ----------------------------------------------------------------------------

    async def authenticate(self, name: str, password: str, client: str) -> SignedIn | None:
        """The user and their session key if the password is right; None if not; raises
        SignInLimited (the password not even checked) or AccountDisabled."""
        now = self.db.clock()

        def reserve(conn: Conn) -> tuple[int, int, Row | None]:
            account_failures, reservation = reserve_attempt(conn, name, client, now)
            row = conn.execute(
                "SELECT name, role, password_hash, disabled, session_key FROM users WHERE name = ?",
                (name,),
            ).fetchone()
            return account_failures, reservation, row

        account_failures, reservation, row = await self.db.write(reserve)
        await slow_down(name, account_failures)
        if row is not None:
            ok = await asyncio.to_thread(verify_password, password, row["password_hash"])
        else:  # spend the same time as a real check, so names cannot be probed by timing
            await asyncio.to_thread(hash_password, password)
            ok = False
        if row is None or not ok:
            log.warning("sign-in failed account=%s client=%s", name, client)
            return None
        await forgive_attempt(self.db, reservation)
        if row["disabled"]:
            raise AccountDisabled(name)
        return SignedIn(
            User(name=row["name"], role=Role(row["role"])),
            SessionRef(row["name"], row["session_key"], new_session_id()),
        )

    # ---- sessions ---------------------------------------------------------------------------

    async def _entry(self, name: str) -> _Entry | None:
        if name in self._cache:
            return self._cache[name]
        row = await self.db.fetch_one(
            "SELECT name, role, disabled, session_key FROM users WHERE name = ?", (name,)
        )
        entry = (
            _Entry(
                User(name=row["name"], role=Role(row["role"])),
                bool(row["disabled"]),
                row["session_key"],
            )
            if row
            else None
        )
        self._cache[name] = entry
        return entry

    async def get(self, name: str) -> User | None:
        """The account if it exists and is not disabled."""
        entry = await self._entry(name)
        return entry.user if entry is not None and not entry.disabled else None

    async def session_user(self, session: SessionRef) -> User | None:
        """The user of a session cookie, or None if the session has been ended (signed out,
        or a new key: everywhere), the account disabled or removed."""
        entry = await self._entry(session.name)
        if entry is None or entry.disabled:
            return None
        if not hmac.compare_digest(entry.session_key.encode(), session.key.encode()):
            return None
        if await self._ended.has(session.session_id):
            return None
        return entry.user

    async def end_session(self, session: SessionRef, *, keep_s: float) -> None:
        """Sign this one session out (see EndedSessions.end)."""
        await self._ended.end(session, keep_s=keep_s)

    # ---- the admins' changes ----------------------------------------------------------------

    async def accounts(self) -> list[Account]:
        rows = await self.db.fetch_all("SELECT * FROM users ORDER BY name")
        return [_account(r) for r in rows]

    async def create(self, name: str, role: Role, password: str, actor: str) -> Account:
        hashed = await asyncio.to_thread(hash_password, password)
        now = self.db.clock()

        def create(conn: Conn) -> Account:
            cursor = conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, created_by,"
                " session_key, password_changed_at) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT(name) DO NOTHING",
                (name, role.value, hashed, now, actor, new_session_key(), now),
            )
            if cursor.rowcount != 1:
                raise AccountExists(f"an account named {name} already exists")
            self.audit.add(conn, actor, "user.created", f"name={name} role={role}", now)
            return _account(_row(conn, name))

        return await self._change(name, create)

    async def set_role(self, name: str, role: Role, actor: str) -> Account:
        now = self.db.clock()

        def set_role(conn: Conn) -> Account:
            before = _row(conn, name)
            if before["role"] == role.value:
                return _account(before)
            if role != Role.ADMIN:
                _keep_an_admin(conn, before, "demote")
            conn.execute("UPDATE users SET role = ? WHERE name = ?", (role.value, name))
            self.audit.add(
                conn, actor, "user.role_changed", f"name={name} role={before['role']} → {role}", now
            )
            return _account(_row(conn, name))

        return await self._change(name, set_role)

    async def set_password(self, name: str, password: str, actor: str) -> Account:
        """A new password; every session of the account ends."""
        hashed = await asyncio.to_thread(hash_password, password)
        now = self.db.clock()

        def set_password(conn: Conn) -> Account:
            _row(conn, name)
            conn.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ?, session_key = ?,"
                " sessions_ended_at = ? WHERE name = ?",
                (hashed, now, new_session_key(), now, name),
            )
            self.audit.add(conn, actor, "user.password_reset", f"name={name} (sessions ended)", now)
            return _account(_row(conn, name))

        return await self._change(name, set_password)

    async def set_disabled(self, name: str, disabled: bool, actor: str) -> Account:
        """Disable (every session ends, sign-in refused) or enable an account."""
        now = self.db.clock()

        def set_disabled(conn: Conn) -> Account:
            before = _row(conn, name)
            if bool(before["disabled"]) == disabled:
                return _account(before)
            if disabled:
                _keep_an_admin(conn, before, "disable")
                conn.execute(
                    "UPDATE users SET disabled = 1, session_key = ?, sessions_ended_at = ?"
                    " WHERE name = ?",
                    (new_session_key(), now, name),
                )
            else:
                conn.execute("UPDATE users SET disabled = 0 WHERE name = ?", (name,))
            action = "user.disabled" if disabled else "user.enabled"
            self.audit.add(conn, actor, action, f"name={name}", now)
            return _account(_row(conn, name))

        return await self._change(name, set_disabled)

    async def end_sessions(self, name: str, actor: str) -> Account:
        """Sign the account out everywhere: every session cookie made so far stops working."""
        now = self.db.clock()

        def end_sessions(conn: Conn) -> Account:
            _row(conn, name)
            conn.execute(
                "UPDATE users SET session_key = ?, sessions_ended_at = ? WHERE name = ?",
                (new_session_key(), now, name),
            )
            self.audit.add(conn, actor, "user.sessions_ended", f"name={name}", now)
            return _account(_row(conn, name))

        return await self._change(name, end_sessions)

    async def session_key(self, name: str) -> str | None:
        entry = await self._entry(name)
        return entry.session_key if entry is not None else None

    async def _change(self, name: str, change: Callable[[Conn], Account]) -> Account:
        """An admin's change in one unit of work; the account's cached entry goes with it."""
        try:
            return await self.db.write(change)
        finally:
            self._cache.pop(name, None)


def _row(conn: Conn, name: str) -> Row:
    row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UnknownAccount(f"no account named {name}")
    return row


def _keep_an_admin(conn: Conn, row: Row, what: str) -> None:
    if row["role"] != Role.ADMIN.value or row["disabled"]:
        return
    counted = conn.execute(
        "SELECT COUNT(*) AS n FROM users WHERE role = ? AND disabled = 0", (Role.ADMIN.value,)
    ).fetchone()
    if counted["n"] <= 1:
        raise LastAdmin(f"cannot {what} {row['name']}: the last active admin")


def _account(row: Row) -> Account:
    return Account(
        name=row["name"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=from_epoch(row["created_at"]),
        created_by=row["created_by"],
        password_changed_at=from_epoch(row["password_changed_at"]),
        sessions_ended_at=from_epoch(row["sessions_ended_at"]),
    )
