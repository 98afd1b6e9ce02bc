"""The audit of changes that are not about one alarm (those go to the alarm's own log):
rules reloaded or refused, walk tests and maintenance windows started and ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiosqlite
from pydantic import BaseModel


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    detail: str


class Audit:
    def __init__(
        self,
        db: aiosqlite.Connection,
        lock: asyncio.Lock,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.lock = lock
        self.clock = clock

    async def record(self, actor: str, action: str, detail: str = "") -> None:
        async with self.lock:
            await self.add(actor, action, detail)
            await self.db.commit()

    async def add(self, actor: str, action: str, detail: str = "") -> None:
        """Within a unit of work the caller holds the lock for (and commits)."""
        await self.db.execute(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
            (self.clock(), actor, action, detail[:4000]),
        )

    async def recent(self, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        sql = "SELECT * FROM audit"
        args: tuple[object, ...] = ()
        if action is not None:
            sql += " WHERE action = ?"
            args = (action,)
        sql += " ORDER BY id DESC LIMIT ?"
        async with self.lock, self.db.execute(sql, (*args, limit)) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditEntry(
                id=r["id"],
                at=datetime.fromtimestamp(r["at"], UTC),
                actor=r["actor"],
                action=r["action"],
                detail=r["detail"],
            )
            for r in rows
        ]
