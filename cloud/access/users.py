"""Duty-room accounts: roles, scrypt-hashed passwords, sign-in limits, sessions that can be
ended, and the admins' changes to accounts (each audited with who made it).

Sign-in limits. Every attempt is recorded in `login_failures` *before* its password is
checked, under the database lock together with the limit check, and the record is removed
again when the password was right; so a burst of simultaneous attempts gets no more checks
than the same attempts one after the other, and a restart does not reset the counts (they
are read from the table). Within `WINDOW_S`:

- one address and one account name: `PAIR_FAILURES` failures, then 429 for that pair;
- one address, any account names: `ADDRESS_FAILURES`, then 429 for that address (a
  spray of guessed names, which also keeps the table small: rows older than the window go);
- one account from all addresses together: no lock. Locking an account on failures from
  anywhere would let anyone keep the duty room's operators out during an incident, just by
  typing wrong passwords for their names. Instead, from `ACCOUNT_SLOW_AFTER` failures on,
  every attempt on that account waits `ACCOUNT_DELAY_S` before its check — the operator at
  their own PC still signs in, a few seconds slower. An attack from many addresses is bounded
  by the per-address limits and the minimum password length (`MIN_PASSWORD`).

Sessions. The session cookie (signed by Starlette's SessionMiddleware) carries the user name,
the account's `session_key`, a random value chosen when the account is made, and the
session's own random id, new at every sign-in (`SessionRef`). Every request compares the key
with the account's current one (from memory: `current_user` in cloud/web/deps.py), so a new
key — a password reset, "sign out everywhere", or the account disabled — ends every earlier
session at once. Because the key is random (not a counter), a cookie made for an older
database does not fit a new one that happens to reuse the name.

Signing out ends one session: its id goes into `ended_sessions` (and a set in memory), and a
cookie with that id is refused from then on, even a copy taken before. An entry is kept until
the session could not be valid anyway: the cookie is signed with its time and re-signed on
every answer, so a copy made at the last request before the sign-out lives at most the
session lifetime after it (`forget_at` = signed out + `SC_CLOUD_SESSION_MAX_AGE_S`). A list of
the ended ones rather than a table of every live session: sign-ins write nothing more, the
list holds only the sign-outs of the last hours, and it survives a restart.

Accounts from `SC_CLOUD_BOOTSTRAP_USERS` are created at start-up when they do not exist yet;
after that the admins manage them here (settings never overwrite an admin's change, and an
account dropped from the setting is left as it is: disable it through the API).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.db.database import Conn, Database, Row
from cloud.errors import Conflict, NotFound

log = logging.getLogger(__name__)


class Role(StrEnum):
    OPERATOR = "operator"  # duty room: accepts and resolves cases
    SUPERVISOR = "supervisor"  # verifies, reads reports
    INSTALLER = "installer"  # provisions gateways; never sees resident data
    ADMIN = "admin"


#: Roles that handle alarms at the duty room.
DUTY_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})

#: Failed sign-ins counted over this window.
WINDOW_S = 300.0
#: Failures for one account name from one address before that pair gets 429.
PAIR_FAILURES = 5
#: Failures from one address (any names) before the address gets 429.
ADDRESS_FAILURES = 20
#: Failures for one account from all addresses before each attempt on it is slowed down.
ACCOUNT_SLOW_AFTER = 10
ACCOUNT_DELAY_S = 2.0
#: Passwords set through the API (bootstrap passwords come from the deployer's settings).
MIN_PASSWORD = 10
MAX_PASSWORD = 256

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate.hex(), digest)


def new_session_key() -> str:
    return secrets.token_hex(16)


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


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
class SessionRef:
    """What a session cookie holds: the account, its session key at sign-in, and the id of
    this one session."""

    name: str
    key: str
    session_id: str


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


class SignInLimited(Exception):
    """Too many failed sign-ins for this account from this address, or from this address."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class AccountDisabled(Exception):
    """The password was right but an admin has disabled the account."""


class UnknownAccount(NotFound):
    """No account of that name."""


class AccountExists(Conflict):
    """An account of that name exists already."""


class LastAdmin(Conflict):
    """The change would leave no active admin."""


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class Users:
    def __init__(self, db: Database, audit: Audit) -> None:
        self.db = db
        self.audit = audit
        # Every API request looks its user up: from memory, so authentication never queues
        # behind ingest's writes on the database. Accounts change only through this class,
        # which drops the changed entry once the change is committed.
        self._cache: dict[str, _Entry | None] = {}
        # signed-out session ids → when they may be forgotten; read from the table at first use
        self._ended: dict[str, float] | None = None

    # ---- bootstrap --------------------------------------------------------------------------

    async def ensure(self, name: str, role: Role, password: str) -> bool:
        """Create the account if it does not exist yet (bootstrap from settings); an existing
        account is left as the admins made it. True if it was created."""
        hashed = await asyncio.to_thread(hash_password, password)
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
            account_failures = _check_limits(conn, name, client, now)
            # reserve the attempt: it counts as a failure until the password proved right
            reservation = conn.execute(
                "INSERT INTO login_failures (at, client, name) VALUES (?,?,?) RETURNING id",
                (now, client, name),
            ).fetchone()[0]
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - WINDOW_S,))
            row = conn.execute(
                "SELECT name, role, password_hash, disabled, session_key FROM users WHERE name = ?",
                (name,),
            ).fetchone()
            return account_failures, reservation, row

        account_failures, reservation, row = await self.db.write(reserve)
        if account_failures >= ACCOUNT_SLOW_AFTER:
            log.warning("sign-in slowed account=%s failures=%s", name, account_failures)
            await asyncio.sleep(ACCOUNT_DELAY_S)
        if row is not None:
            ok = await asyncio.to_thread(verify_password, password, row["password_hash"])
        else:  # spend the same time as a real check, so names cannot be probed by timing
            await asyncio.to_thread(hash_password, password)
            ok = False
        if row is None or not ok:
            log.warning("sign-in failed account=%s client=%s", name, client)
            return None
        await self.db.execute("DELETE FROM login_failures WHERE id = ?", (reservation,))
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
        if session.session_id in await self._ended_sessions():
            return None
        return entry.user

    async def end_session(self, session: SessionRef, *, keep_s: float) -> None:
        """Sign this one session out: its cookie (and every copy) is refused from now on;
        the record is kept `keep_s` (the longest a copy could still be valid)."""
        now = self.db.clock()
        ended = await self._ended_sessions()

        def end(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO ended_sessions (session_id, name, ended_at, forget_at)"
                " VALUES (?,?,?,?) ON CONFLICT (session_id) DO UPDATE SET"
                " ended_at = excluded.ended_at, forget_at = excluded.forget_at",
                (session.session_id, session.name, now, now + keep_s),
            )
            conn.execute("DELETE FROM ended_sessions WHERE forget_at <= ?", (now,))

        await self.db.write(end)
        ended[session.session_id] = now + keep_s
        for gone in [sid for sid, forget_at in ended.items() if forget_at <= now]:
            del ended[gone]
        log.info("signed out account=%s", session.name)

    async def _ended_sessions(self) -> dict[str, float]:
        if self._ended is None:
            rows = await self.db.fetch_all(
                "SELECT session_id, forget_at FROM ended_sessions WHERE forget_at > ?",
                (self.db.clock(),),
            )
            if self._ended is None:  # another request may have read it meanwhile
                self._ended = {row["session_id"]: row["forget_at"] for row in rows}
        return self._ended

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


def _check_limits(conn: Conn, name: str, client: str, now: float) -> int:
    """Raise SignInLimited if this pair or this address failed too often; else the account's
    failures from all addresses."""
    since = now - WINDOW_S
    checks = (
        ("client = ? AND name = ?", (client, name), PAIR_FAILURES, "for this account"),
        ("client = ?", (client,), ADDRESS_FAILURES, "from this address"),
    )
    for where, args, limit, what in checks:
        counted = conn.execute(
            f"SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures WHERE at > ? AND {where}",
            (since, *args),
        ).fetchone()
        if counted["n"] >= limit:
            wait = max(1, int(counted["first"] + WINDOW_S - now) + 1)
            log.warning("sign-in limited %s client=%s account=%s", what, client, name)
            raise SignInLimited(f"too many failed sign-ins {what}; try again in {wait} s", wait)
    counted = conn.execute(
        "SELECT COUNT(*) AS n FROM login_failures WHERE at > ? AND name = ?", (since, name)
    ).fetchone()
    return int(counted["n"])


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
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        created_by=row["created_by"],
        password_changed_at=_dt(row["password_changed_at"]),
        sessions_ended_at=_dt(row["sessions_ended_at"]),
    )
