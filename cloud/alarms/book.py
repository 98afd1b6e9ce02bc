"""The alarm book: what arrives is recorded here, with what the rules decided about it.

Idempotent by construction: an event id (or a telemetry batch id) is stored once, and the
rules are asked about it only when it is new, in the same transaction that stores what they
decide — a redelivered message finds its id and makes nothing. There is at most one open
alarm per device and rule (a unique `open_key`; repeats are counted on it). An alarm is
committed here before anyone is told about it.

A batch costs two round trips to the database thread however many messages it holds: one to
learn which ids are stored already, then — after the rules decided about the new ones, on the
event loop — one unit of work that stores everything (`cloud/alarms/recording.py`). The
timeline follows the brief's "四个第一" (at the device, received, stored, pushed, shown,
accepted, dispatched, feedback, resolved, verified; plus cleared and escalated). Alarms from
devices under a walk test or a maintenance window are recorded with that mode; they are never
on the duty-room board, never pushed and never escalated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from cloud.alarms.arrivals import Arrival, known_ids
from cloud.alarms.model import SYSTEM, Alarm, AlarmState, Mode, Outcome, Raised
from cloud.alarms.recording import Recording
from cloud.alarms.rows import get, log
from cloud.db.database import Conn, Database
from cloud.rules import Decision, Evaluation, Key
from cloud.site.registry import Registry
from contract.models import Status


class AlarmBook:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        budget_for: Callable[[str, int], float | None] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        #: (rule, level) → the acceptance budget in seconds of the policy in force
        self.budget_for = budget_for

    def _unit(self) -> Recording:
        return Recording(self.registry, self.db.clock(), self.budget_for)

    # ---- recording what arrives -------------------------------------------------------------

    async def unseen(self, arrivals: Sequence[Arrival]) -> list[bool]:
        """For each arrival, in order: whether its id is new — stored neither before nor
        earlier in the same list. Only these are shown to the rules."""
        known = await self.db.read(lambda c: known_ids(c, arrivals)) if arrivals else set()
        out: list[bool] = []
        for arrival in arrivals:
            key = (arrival.table, arrival.id)
            out.append(key not in known)
            known.add(key)
        return out

    async def record(
        self,
        plans: Sequence[tuple[Arrival, Evaluation] | Exception | None],
        *,
        extra: Callable[[Conn], None] | None = None,
    ) -> list[list[Raised] | Exception | None]:
        """Group commit: store many messages in order, each with what the rules decided about
        it, in ONE transaction.

        Per plan, in order: None (a message seen before: nothing to store) stays None; an
        exception (the rules failed on it) comes back as it is; an (arrival, evaluation) is
        stored — its id and the alarms raised, repeated or cleared — and gives what to
        announce, or its exception if storing it failed (its savepoint is rolled back; the
        others are kept). `extra` writes more in the same transaction (ingest's rejections and
        delivery watermarks). If the commit itself (or `extra`) fails, nothing is stored and
        the error is raised."""
        if extra is None and all(p is None or isinstance(p, Exception) for p in plans):
            return [p for p in plans if p is None or isinstance(p, Exception)]
        unit = self._unit()
        return await self.db.write(lambda c: unit.store(c, plans, extra))

    async def apply(self, decided: Evaluation | Iterable[Decision], at: float) -> list[Raised]:
        """Decisions with no message of their own (ticks, gateway status, site changes)."""
        evaluation = decided if isinstance(decided, Evaluation) else Evaluation(list(decided))
        if not evaluation.decisions and not evaluation.inhibited:
            return []
        unit = self._unit()
        return await self.db.write(lambda c: unit.apply(c, evaluation, at))

    async def use_budgets(self, budget_for: Callable[[str, int], float | None]) -> int:
        """Take acceptance budgets from the policies in force from now on, and give one to
        every open live alarm that has none yet (stored by a version without budgets);
        returns how many were given one. A budget once set stays: a restart or a reload of
        the rules does not move it."""
        self.budget_for = budget_for

        def fill(conn: Conn) -> int:
            rows = conn.execute(
                "SELECT id, rule, level, received_at FROM alarms WHERE accept_by IS NULL"
                " AND state != ? AND mode = ?",
                (AlarmState.RESOLVED.value, Mode.LIVE.value),
            ).fetchall()
            filled = []
            for r in rows:
                budget = budget_for(r["rule"], r["level"])
                if budget is not None:
                    filled.append((r["received_at"] + budget, r["id"]))
            conn.executemany("UPDATE alarms SET accept_by = ? WHERE id = ?", filled)
            return len(filled)

        return await self.db.write(fill)

    async def open_keys(self) -> list[Key]:
        """(gateway, device, rule) of every open alarm, for the rules core after a restart."""
        rows = await self.db.fetch_all(
            "SELECT gateway, device, rule FROM alarms WHERE open_key IS NOT NULL"
        )
        return [(r["gateway"], r["device"], r["rule"]) for r in rows]

    async def close_window(self, window_id: int, actor: str) -> list[Alarm]:
        """A walk test, maintenance window or drill ended: its open alarms close as tests,
        resolved by the system (the log names who ended the window): nobody worked them."""
        now = self.db.clock()

        def close(conn: Conn) -> list[Alarm]:
            ids = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM alarms WHERE window_id = ? AND open_key IS NOT NULL",
                    (window_id,),
                )
            ]
            for alarm_id in ids:
                conn.execute(
                    "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?,"
                    " resolved_by = ?, outcome = ? WHERE id = ?",
                    (AlarmState.RESOLVED.value, now, SYSTEM, Outcome.TEST.value, alarm_id),
                )
                detail = f"test: window #{window_id} ended by {actor}"
                log(conn, alarm_id, SYSTEM, "resolved", detail, now)
            return [get(conn, alarm_id) for alarm_id in ids]

        return await self.db.write(close)

    async def note(self, alarm_id: int, actor: str, action: str, detail: str) -> None:
        """Add a line to an alarm's log (e.g. a command sent to the gateway)."""
        now = self.db.clock()
        await self.db.write(lambda c: log(c, alarm_id, actor, action, detail, now))

    # ---- gateways' status ---------------------------------------------------------------------

    async def record_status(self, status: Status, at: float) -> str | None:
        """Track a gateway's online/offline state; returns the previous state if it changed."""

        def record(conn: Conn) -> str | None:
            row = conn.execute(
                "SELECT state FROM gateways WHERE id = ?", (status.gateway,)
            ).fetchone()
            previous = row["state"] if row else None
            if previous == status.state.value:
                conn.execute(
                    "UPDATE gateways SET last_seen = ?, boot = ? WHERE id = ?",
                    (at, status.boot, status.gateway),
                )
                return None
            conn.execute(
                "INSERT INTO gateways (id, state, boot, since, last_seen) VALUES (?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, boot = excluded.boot,"
                " since = excluded.since, last_seen = excluded.last_seen",
                (status.gateway, status.state.value, status.boot, at, at),
            )
            return previous

        return await self.db.write(record)

    async def gateways(self) -> list[dict[str, object]]:
        rows = await self.db.fetch_all("SELECT * FROM gateways ORDER BY id")
        return [
            {
                "id": r["id"],
                "state": r["state"],
                "boot": r["boot"],
                "since": datetime.fromtimestamp(r["since"], UTC),
                "last_seen": datetime.fromtimestamp(r["last_seen"], UTC),
            }
            for r in rows
        ]
