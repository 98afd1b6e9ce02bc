"""The audit of changes that are not about one alarm (those go to the alarm's own log):
rules reloaded or refused, walk tests and maintenance windows started and ended, accounts,
credentials, the site registry."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from cloud.db.database import Conn, Database
from cloud.times import from_epoch


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    detail: str


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, actor: str, action: str, detail: str = "") -> None:
        """One entry, in a transaction of its own."""
        at = self.db.clock()
        await self.db.write(lambda c: self.add(c, actor, action, detail, at))

    def add(self, conn: Conn, actor: str, action: str, detail: str = "", at: float = 0) -> None:
        """One entry within the caller's unit of work (on the database thread)."""
        conn.execute(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
            (at or self.db.clock(), actor, action, detail[:4000]),
        )

    async def has(self, action: str, ending: str) -> bool:
        """Whether an entry of `action` ends with `ending` (a request's tag, e.g. the id of a
        command it sent)."""
        pattern = "%" + ending.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        row = await self.db.fetch_one(
            "SELECT 1 FROM audit WHERE action = ? AND detail LIKE ? ESCAPE '\\' LIMIT 1",
            (action, pattern),
        )
        return row is not None

    async def recent(self, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        sql = "SELECT * FROM audit"
        args: tuple[object, ...] = ()
        if action is not None:
            sql += " WHERE action = ?"
            args = (action,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self.db.fetch_all(sql, (*args, limit))
        return [
            AuditEntry(
                id=r["id"],
                at=from_epoch(r["at"]),
                actor=r["actor"],
                action=r["action"],
                detail=r["detail"],
            )
            for r in rows
        ]
