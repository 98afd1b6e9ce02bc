"""Rejected input: counted by reason and kept (bounded) for inspection. Never an alarm."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum

import aiosqlite
from pydantic import BaseModel

log = logging.getLogger(__name__)

KEEP_PAYLOAD_BYTES = 64 * 1024


class Reason(StrEnum):
    BAD_TOPIC = "bad_topic"
    OVERSIZE = "oversize"
    MALFORMED_JSON = "malformed_json"
    INVALID = "invalid"
    GATEWAY_MISMATCH = "gateway_mismatch"
    UNKNOWN_GATEWAY = "unknown_gateway"
    UNKNOWN_DEVICE = "unknown_device"
    INTERNAL_ERROR = "internal_error"


class RejectedMessage(BaseModel):
    id: int
    at: datetime
    topic: str
    reason: Reason
    detail: str
    payload: str


class RejectLog:
    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock, keep: int = 10000) -> None:
        self.db = db
        self.lock = lock
        self.keep = keep
        self.counts: Counter[str] = Counter()

    async def reject(
        self, topic: str, payload: bytes, reason: Reason, detail: str, at: float
    ) -> None:
        self.counts[reason.value] += 1
        log.warning("rejected topic=%s reason=%s detail=%s", topic, reason.value, detail[:300])
        async with self.lock:
            await self.db.execute(
                "INSERT INTO rejected (at, topic, reason, detail, payload) VALUES (?,?,?,?,?)",
                (at, topic[:500], reason.value, detail[:2000], payload[:KEEP_PAYLOAD_BYTES]),
            )
            if self.counts.total() % 500 == 0:
                await self.db.execute(
                    "DELETE FROM rejected WHERE id <= (SELECT max(id) FROM rejected) - ?",
                    (self.keep,),
                )
            await self.db.commit()

    async def recent(self, limit: int = 100) -> list[RejectedMessage]:
        async with (
            self.lock,
            self.db.execute("SELECT * FROM rejected ORDER BY id DESC LIMIT ?", (limit,)) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            RejectedMessage(
                id=r["id"],
                at=datetime.fromtimestamp(r["at"], UTC),
                topic=r["topic"],
                reason=Reason(r["reason"]),
                detail=r["detail"],
                payload=bytes(r["payload"]).decode("utf-8", errors="replace"),
            )
            for r in rows
        ]
