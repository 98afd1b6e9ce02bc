"""The ledger's reads, each in one round trip to the database thread: a page of cases, every
matching case (for exports), their count, and the report's few columns of each. The rows
become cases on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from cloud.alarms.model import Alarm, Mode
from cloud.db.database import Conn, Database, Row
from cloud.errors import Refused
from cloud.ledger.cases import LedgerPage, LedgerRow, ReportCase, ledger_row, report_case
from cloud.ledger.filters import LedgerFilter, LedgerQuery
from cloud.rules.config import RulesFile

#: A report covers at most this many cases; a wider filter is refused with the count.
REPORT_MAX_ROWS = 200_000
_REPORT_COLUMNS = (
    "level, rule, mode, policy, state, outcome, cause, received_at, accept_by, accepted_at,"
    " resolved_at, model, building_id, community, building"
)


class TooMany(Refused):
    """More cases match than a report or an export may hold."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"{total} cases match; at most {limit}")
        self.total = total
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Found:
    """Rows as fetched (read on the database thread; turned into cases elsewhere)."""

    total: int
    rows: list[Row]
    #: per alarm, per action (feedback, dispatched, verified): the log's details, oldest first
    notes: dict[int, dict[str, list[str]]]

    def cases(self, rules: RulesFile, now: float) -> list[LedgerRow]:
        out = []
        for row in self.rows:
            alarm = Alarm.from_row(row)
            out.append(ledger_row(alarm, self.notes.get(alarm.id, {}), rules, now))
        return out


def _count(conn: Conn, where: str, args: list[object]) -> int:
    return int(conn.execute(f"SELECT count(*) FROM alarms{where}", args).fetchone()[0])


def _select(conn: Conn, filt: LedgerFilter, limit: int | None, offset: int) -> Found:
    where, args = filt.where()
    total = _count(conn, where, args)
    sql = f"SELECT * FROM alarms{where} ORDER BY received_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        args = [*args, limit, offset]
    rows = list(conn.execute(sql, args))
    notes: dict[int, dict[str, list[str]]] = {}
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        lines = conn.execute(
            "SELECT alarm_id, action, detail FROM alarm_log"
            " WHERE action IN ('feedback', 'dispatched', 'verified') AND alarm_id IN"
            f" ({','.join('?' * len(chunk))}) ORDER BY id",
            chunk,
        )
        for alarm_id, action, detail in lines:
            notes.setdefault(alarm_id, {}).setdefault(action, []).append(detail)
    return Found(total, rows, notes)


async def count(db: Database, filt: LedgerFilter) -> int:
    where, args = filt.where()
    return await db.read(lambda c: _count(c, where, args))


async def page(db: Database, query: LedgerQuery, rules: RulesFile, now: float) -> LedgerPage:
    offset = (query.page - 1) * query.page_size
    found = await db.read(lambda c: _select(c, query, query.page_size, offset))
    return LedgerPage(
        total=found.total,
        page=query.page,
        page_size=query.page_size,
        pages=max(1, math.ceil(found.total / query.page_size)),
        items=found.cases(rules, now),
    )


async def rows(db: Database, filt: LedgerFilter, rules: RulesFile, now: float) -> list[LedgerRow]:
    """Every matching case, newest first (for exports and the report). The database thread
    only fetches; the rows become cases on a worker thread, off the event loop."""
    found = await db.read(lambda c: _select(c, filt, None, 0))
    return await asyncio.to_thread(found.cases, rules, now)


def _select_for_report(conn: Conn, filt: LedgerFilter) -> list[Row]:
    """The report's cases: never a drill's (its own report: cloud/duty/drill_report.py)."""
    where, args = filt.where()
    where = f"{where} AND mode != ?" if where else " WHERE mode != ?"
    args = [*args, Mode.DRILL.value]
    total = _count(conn, where, args)
    if total > REPORT_MAX_ROWS:
        raise TooMany(total, REPORT_MAX_ROWS)
    return list(conn.execute(f"SELECT {_REPORT_COLUMNS} FROM alarms{where}", args))


async def report_cases(
    db: Database, filt: LedgerFilter, rules: RulesFile, now: float
) -> list[ReportCase]:
    """The matching cases as the report reads them: fifteen columns a case, no log; raises
    TooMany past REPORT_MAX_ROWS. The rows become cases on a worker thread."""
    found = await db.read(lambda c: _select_for_report(c, filt))
    return await asyncio.to_thread(lambda: [report_case(r, rules, now) for r in found])
