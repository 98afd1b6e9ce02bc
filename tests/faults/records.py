"""The cloud's database as the fault suite reads it from outside, while the cloud runs and after
it stopped: the events it stored, in storing order; how many life-safety ones; its alarms.

The cloud keeps its records in SQLite (a file: `SqliteRecords`) or in PostgreSQL (a server:
`PostgresRecords`). Storing order is what "out of order" compares (docs/reliability.md): on
SQLite the events' `rowid`. PostgreSQL numbers no rows (`ctid`, a row's place on disk, is not
the order of inserts: PostgreSQL fills free space on earlier pages), so there the order is read
from the server's write-ahead log through a logical replication slot (`test_decoding`, which
needs `wal_level=logical`) made before the cloud first starts: every committed insert into
`events`, in commit order and, within a transaction, in the order of its statements — a row
that a killed server never committed is not in it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from tests.faults.site import LIFE_SAFETY

Key = tuple[str, str, int]  # gateway, boot, seq


@dataclass(frozen=True, slots=True)
class Stored:
    order: int  # its place in storing order (SQLite: the rowid)
    id: str
    key: Key
    kind: str
    type: str
    device: str
    ts: float
    received_at: float


class Records(Protocol):
    """The cloud's database, read from outside."""

    @property
    def setting(self) -> str:
        """What the cloud is given as `SC_CLOUD_DATABASE`."""
        ...

    def stored(self, gateways: Sequence[str], kinds: Sequence[str] | None = None) -> list[Stored]:
        """Events of `gateways` the cloud stored (all kinds, or `kinds`), in storing order."""
        ...

    def count(self, gateways: Sequence[str]) -> int:
        """Life-safety events of `gateways` stored."""
        ...

    def alarms(self, gateways: Sequence[str]) -> list[dict[str, Any]]:
        """id, rule, gateway, device, first_event_id and repeats of the alarms of `gateways`."""
        ...

    def has_event(self, event_id: str) -> bool: ...


_EVENT_COLUMNS = "id, gateway, boot, seq, kind, type, device, ts, received_at"
_ALARM_COLUMNS = "id, rule, gateway, device, first_event_id, repeats"


def _stored(order: int, r: Sequence[Any]) -> Stored:
    return Stored(order, r[0], (r[1], r[2], r[3]), r[4], r[5], r[6], r[7], r[8])


@dataclass(frozen=True)
class SqliteRecords:
    path: Path

    @property
    def setting(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)

    def stored(self, gateways: Sequence[str], kinds: Sequence[str] | None = None) -> list[Stored]:
        if not self.path.exists():
            return []
        db = self._connect()
        try:
            sql = (
                f"SELECT rowid, {_EVENT_COLUMNS} FROM events WHERE gateway IN ({_marks(gateways)})"
            )
            args: list[Any] = list(gateways)
            if kinds is not None:
                sql += f" AND kind IN ({_marks(kinds)})"
                args += list(kinds)
            rows = db.execute(sql + " ORDER BY rowid", args).fetchall()
        except sqlite3.OperationalError:  # the cloud has not made its tables yet
            return []
        finally:
            db.close()
        return [_stored(r[0], r[1:]) for r in rows]

    def count(self, gateways: Sequence[str]) -> int:
        if not self.path.exists():
            return 0
        db = self._connect()
        try:
            row = db.execute(
                f"SELECT COUNT(*) FROM events WHERE gateway IN ({_marks(gateways)})"
                f" AND kind IN ({_marks(LIFE_SAFETY)})",
                [*gateways, *LIFE_SAFETY],
            ).fetchone()
            return int(row[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()

    def alarms(self, gateways: Sequence[str]) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        db = self._connect()
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE gateway IN ({_marks(gateways)})",
                list(gateways),
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()
        return [dict(r) for r in rows]

    def has_event(self, event_id: str) -> bool:
        if not self.path.exists():
            return False
        db = self._connect()
        try:
            return (
                db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None
            )
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()


def _marks(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


#: The slot `PostgresRecords.watch` makes.
SLOT = "sc_faults_storing_order"
#: An insert into `events` as test_decoding writes it; the id is the table's first column.
_INSERTED = re.compile(r"^table public\.events: INSERT: id\[text\]:'((?:[^']|'')*)'")


class UnknownOrder(RuntimeError):
    """A stored event is not in the write-ahead log's inserts: its storing order is unknown."""


@dataclass(frozen=True)
class PostgresRecords:
    url: str
    slot: str = SLOT

    @property
    def setting(self) -> str:
        return self.url

    def watch(self) -> None:
        """Start recording the storing order: call before the cloud first starts (the server
        needs `wal_level=logical`); the slot survives the server's kill -9."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (self.slot,)
            )

    def storing_order(self) -> dict[str, int]:
        """Event id → its place among every committed insert into `events` since `watch`."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL)"
                " WHERE data LIKE 'table public.events: INSERT: %%'",
                (self.slot,),
            ).fetchall()
        order: dict[str, int] = {}
        for (data,) in rows:
            found = _INSERTED.match(data)
            if found is None:
                raise UnknownOrder(f"cannot read an insert of the write-ahead log: {data[:200]}")
            order.setdefault(found.group(1).replace("''", "'"), len(order))
        return order

    def stored(self, gateways: Sequence[str], kinds: Sequence[str] | None = None) -> list[Stored]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE gateway = ANY(%s)"
        args: list[Any] = [list(gateways)]
        if kinds is not None:
            sql += " AND kind = ANY(%s)"
            args.append(list(kinds))
        rows = self._query(sql, args)
        if not rows:
            return []
        order = self.storing_order()
        unknown = [r[0] for r in rows if r[0] not in order]
        if unknown:
            raise UnknownOrder(
                f"{len(unknown)} stored events are not among the inserts the slot {self.slot!r}"
                f" saw (e.g. {unknown[0]}): was it made before the cloud first started?"
            )
        return sorted((_stored(order[r[0]], r) for r in rows), key=lambda s: s.order)

    def count(self, gateways: Sequence[str]) -> int:
        rows = self._query(
            "SELECT COUNT(*) FROM events WHERE gateway = ANY(%s) AND kind = ANY(%s)",
            [list(gateways), list(LIFE_SAFETY)],
        )
        return int(rows[0][0]) if rows else 0

    def alarms(self, gateways: Sequence[str]) -> list[dict[str, Any]]:
        try:
            with psycopg.connect(self.url, autocommit=True, row_factory=dict_row) as conn:
                return conn.execute(
                    f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE gateway = ANY(%s)",
                    [list(gateways)],
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            return []

    def has_event(self, event_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM events WHERE id = %s", [event_id]))

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                return conn.execute(sql, args).fetchall()
        except psycopg.errors.UndefinedTable:  # the cloud has not made its tables yet
            return []
