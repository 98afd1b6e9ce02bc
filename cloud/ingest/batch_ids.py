"""How long telemetry batch ids are remembered. Every batch's id is stored with it
(`telemetry_batches`), so a batch sent twice is stored once; a gateway sends a batch again
only when it missed the broker's PUBACK (gateway/outbox.py deletes a batch on its PUBACK),
so within minutes. Ids older than `keep_s` are forgotten, a few thousand per unit of work
so the writer is never held for long: without it the table grows by every batch of every
gateway (50 gateways at one batch per 5 s: 864,000 rows a day). A batch resent after its id
was forgotten is stored again, which changes nothing: a reading is kept by series and time,
and the second write of it replaces the first."""

from __future__ import annotations

import asyncio
import logging

from cloud.db.database import Conn, Database

log = logging.getLogger(__name__)

#: ids forgotten per unit of work
CHUNK = 5000


def forget_chunk(conn: Conn, before: float, limit: int = CHUNK) -> int:
    """Forget up to `limit` batch ids received before `before`; how many went."""
    gone = conn.execute(
        "DELETE FROM telemetry_batches WHERE id IN"
        " (SELECT id FROM telemetry_batches WHERE received_at < ? LIMIT ?)",
        (before, limit),
    )
    return int(gone.rowcount)


async def forget_old(db: Database, keep_s: float) -> int:
    """Forget every batch id older than `keep_s`, chunk by chunk; how many went."""
    before = db.clock() - keep_s
    total = 0
    while True:
        gone = await db.write(lambda conn: forget_chunk(conn, before))
        total += gone
        if gone < CHUNK:
            return total
        await asyncio.sleep(0)  # ingest's commits go between the chunks


async def keep_forgetting(db: Database, keep_s: float, every_s: float = 3600.0) -> None:
    """Forget old batch ids now and every `every_s` until cancelled; a failure is logged and
    tried again at the next turn."""
    while True:
        try:
            if gone := await forget_old(db, keep_s):
                log.info("forgot %d telemetry batch ids older than %.0f s", gone, keep_s)
        except Exception as exc:  # the database away: the next turn tries again
            log.warning("forgetting old telemetry batch ids failed: %s", exc)
        await asyncio.sleep(every_s)
