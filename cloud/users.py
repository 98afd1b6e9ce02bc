"""Duty-room accounts: roles, scrypt-hashed passwords, sign-in with a failure limit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections import defaultdict, deque
from enum import StrEnum

import aiosqlite
from pydantic import BaseModel


class Role(StrEnum):
    OPERATOR = "operator"  # duty room: accepts and resolves cases
    SUPERVISOR = "supervisor"  # verifies, reads reports
    INSTALLER = "installer"  # provisions gateways; never sees resident data
    ADMIN = "admin"


#: Roles that handle alarms at the duty room.
DUTY_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})

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


class User(BaseModel):
    name: str
    role: Role


class SignInLimited(Exception):
    """Too many failed sign-ins for this account or address; wait and try again."""


class Users:
    MAX_FAILURES = 5
    WINDOW_S = 300.0

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        self.db = db
        self.lock = lock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        # Every API request looks its user up (`get`): from memory, so authentication never
        # queues behind ingest's writes on the shared connection. Accounts change only through
        # this class (`ensure`), which empties the cache.
        self._cache: dict[str, User | None] = {}

    async def ensure(self, name: str, role: Role, password: str) -> None:
        """Create the account, or reset its role and password (bootstrap from settings)."""
        hashed = await asyncio.to_thread(hash_password, password)
        async with self.lock:
            await self.db.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
                " password_hash = excluded.password_hash",
                (name, role.value, hashed, time.time()),
            )
            await self.db.commit()
            self._cache.clear()

    def _check_limit(self, key: str) -> None:
        window = self._failures[key]
        now = time.monotonic()
        while window and window[0] < now - self.WINDOW_S:
            window.popleft()
        if len(window) >= self.MAX_FAILURES:
            raise SignInLimited(key)

    async def authenticate(self, name: str, password: str, client: str) -> User | None:
        keys = (f"user:{name}", f"addr:{client}")
        for key in keys:
            self._check_limit(key)
        async with (
            self.lock,
            self.db.execute(
                "SELECT name, role, password_hash FROM users WHERE name = ?", (name,)
            ) as cur,
        ):
            row = await cur.fetchone()
        if row is not None:
            ok = await asyncio.to_thread(verify_password, password, row["password_hash"])
        else:  # spend the same time as a real check, so names cannot be probed by timing
            await asyncio.to_thread(hash_password, password)
            ok = False
        if row is None or not ok:
            for key in keys:
                self._failures[key].append(time.monotonic())
            return None
        return User(name=row["name"], role=Role(row["role"]))

    async def get(self, name: str) -> User | None:
        if name in self._cache:
            return self._cache[name]
        async with (
            self.lock,
            self.db.execute("SELECT name, role FROM users WHERE name = ?", (name,)) as cur,
        ):
            row = await cur.fetchone()
            user = User(name=row["name"], role=Role(row["role"])) if row else None
            self._cache[name] = user  # under the lock: `ensure` cannot slip in between
        return user
