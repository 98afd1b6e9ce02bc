"""Rejected input: counted by reason and kept (bounded) for inspection. Never an alarm.

Cheap on purpose, so one gateway's junk cannot hold up another's alarm: `note()` only counts
and queues; the queued rows are written by ingest's group commit in the same transaction as
the batch they came with (`write_sync`), so a flood costs one commit per batch, not one per
message. Per gateway, at most `keep_per_minute` payloads a minute are kept (the rest are
counted, not stored) and at most `log_per_minute` lines a minute are logged (then one line
saying how many were not). The counts by reason live in the database too
(`reject_counts`), so they survive a restart.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel

from cloud.db.database import Conn, Database

log = logging.getLogger(__name__)

KEEP_PAYLOAD_BYTES = 64 * 1024
#: no gateway could be read from the topic
NO_GATEWAY = "-"


class Reason(StrEnum):
    BAD_TOPIC = "bad_topic"
    OVERSIZE = "oversize"
    MALFORMED_JSON = "malformed_json"
    INVALID = "invalid"
    IMPLAUSIBLE_TIME = "implausible_time"
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


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused message, as noted (its row is written with the next commit, if kept)."""

    topic: str
    gateway: str
    reason: Reason
    detail: str
    at: float


@dataclass(slots=True)
class _Budget:
    """A gateway's allowance of kept payloads and log lines in the current minute."""

    minute: int = -1
    kept: int = 0
    logged: int = 0
    unlogged: int = 0
    unkept: int = 0


@dataclass
class _Pending:
    rows: list[tuple[float, str, str, str, bytes]] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (gateway, reason)


class RejectLog:
    def __init__(
        self,
        db: Database,
        keep: int = 10000,
        *,
        keep_per_minute: int = 100,
        log_per_minute: int = 5,
    ) -> None:
        self.db = db
        self.keep = keep
        self.keep_per_minute = keep_per_minute
        self.log_per_minute = log_per_minute
        #: refused messages by reason, since the database was made
        self.counts: Counter[str] = Counter()
        #: payloads counted but not kept (over a gateway's allowance)
        self.not_kept = 0
        self._budgets: dict[str, _Budget] = {}
        self._pending = _Pending()
        self._written = 0

    async def load(self) -> None:
        """The counts as the database has them (after a restart)."""
        rows = await self.db.fetch_all(
            "SELECT reason, SUM(count) FROM reject_counts GROUP BY reason"
        )
        self.counts = Counter({str(r[0]): int(r[1]) for r in rows})

    # ---- noting (on the event loop, no I/O) -------------------------------------------------

    def note(
        self,
        topic: str,
        gateway: str | None,
        payload: bytes,
        reason: Reason,
        detail: str,
        at: float,
    ) -> Rejection:
        """Count one refused message and queue it for the next commit (within the gateway's
        allowance); log it (within the allowance)."""
        gw = gateway or NO_GATEWAY
        self.counts[reason.value] += 1
        self._pending.counts[(gw, reason.value)] += 1
        budget = self._budget(gw, at)
        if budget.kept < self.keep_per_minute:
            budget.kept += 1
            self._pending.rows.append(
                (at, topic[:500], reason.value, detail[:2000], payload[:KEEP_PAYLOAD_BYTES])
            )
        else:
            budget.unkept += 1
            self.not_kept += 1
        if budget.logged < self.log_per_minute:
            budget.logged += 1
            log.warning("rejected topic=%s reason=%s detail=%s", topic[:200], reason, detail[:300])
        else:
            budget.unlogged += 1
        return Rejection(topic, gw, reason, detail, at)

    def _budget(self, gateway: str, at: float) -> _Budget:
        minute = int(at // 60)
        budget = self._budgets.get(gateway)
        if budget is None:
            if len(self._budgets) > 10_000:  # junk gateway ids from bad topics: bounded
                self._budgets.clear()
            budget = self._budgets[gateway] = _Budget(minute)
        if budget.minute != minute:
            if budget.unlogged or budget.unkept:
                log.warning(
                    "rejected %d more from gateway=%s in the last minute (not logged); "
                    "%d payloads counted but not kept",
                    budget.unlogged,
                    gateway,
                    budget.unkept,
                )
            budget.minute, budget.kept, budget.logged = minute, 0, 0
            budget.unlogged = budget.unkept = 0
        return budget

    # ---- writing (with ingest's group commit) -----------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._pending.counts)

    def take(self) -> _Pending:
        """What to write with the next commit (hand it back with `put_back` if that fails)."""
        pending, self._pending = self._pending, _Pending()
        return pending

    def put_back(self, pending: _Pending) -> None:
        self._pending.rows[:0] = pending.rows
        self._pending.counts.update(pending.counts)

    def write_sync(self, conn: Conn, pending: _Pending) -> None:
        """On the database thread, inside the caller's transaction."""
        if pending.rows:
            conn.executemany(
                "INSERT INTO rejected (at, topic, reason, detail, payload) VALUES (?,?,?,?,?)",
                pending.rows,
            )
            before = self._written
            self._written += len(pending.rows)
            if self._written // 500 != before // 500:
                conn.execute(
                    "DELETE FROM rejected WHERE id <= (SELECT max(id) FROM rejected) - ?",
                    (self.keep,),
                )
        if pending.counts:
            conn.executemany(
                "INSERT INTO reject_counts (gateway, reason, count) VALUES (?, ?, ?)"
                " ON CONFLICT (gateway, reason) DO UPDATE"
                " SET count = reject_counts.count + excluded.count",
                [(gw, reason, n) for (gw, reason), n in pending.counts.items()],
            )

    async def flush(self) -> None:
        """Write what is queued in a transaction of its own (when no batch is coming)."""
        if not self.has_pending:
            return
        pending = self.take()

        try:
            await self.db.write(lambda c: self.write_sync(c, pending))
        except Exception:
            self.put_back(pending)
            raise

    # ---- reading ------------------------------------------------------------------------------

    async def by_gateway(self) -> dict[str, dict[str, int]]:
        """Counts by gateway and reason, since the database was made."""
        rows = await self.db.fetch_all(
            "SELECT gateway, reason, count FROM reject_counts ORDER BY gateway, reason"
        )
        out: dict[str, dict[str, int]] = {}
        for gateway, reason, count in rows:
            out.setdefault(str(gateway), {})[str(reason)] = int(count)
        return out

    async def recent(self, limit: int = 100) -> list[RejectedMessage]:
        rows = await self.db.fetch_all("SELECT * FROM rejected ORDER BY id DESC LIMIT ?", (limit,))
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
