"""PostgreSQL as the system of record, behind the connection our units of work are written
against (sqlite3's): `connect(url)` gives a `PgConnection` (psycopg 3, synchronous) that a
unit of work uses as it would a `sqlite3.Connection`.

- `conn.execute(sql, params)` / `conn.executemany(sql, rows)` take SQL with `?` placeholders
  (turned into psycopg's `%s`; a literal `%` is escaped) and return a cursor with `fetchone()`,
  `fetchall()`, iteration and `rowcount`. Rows support `row["name"]`, `row[0]`, `row.keys()`,
  unpacking and `dict(row)`, like `sqlite3.Row`.
- New ids: write `INSERT … RETURNING id` and read it with `fetchone()[0]` (SQLite ≥ 3.35 runs
  the same statement). `cursor.lastrowid` is refused with that advice: PostgreSQL has no
  "last row id" of a statement.
- Transactions: the connection is in autocommit mode, as sqlite3's with `isolation_level=None`;
  `BEGIN` (any of SQLite's forms: `BEGIN IMMEDIATE` is what `Database.write` sends) starts a
  transaction and takes the database's writer lock (a transaction-level advisory lock): one
  writing transaction at a time in the whole database, across processes — what `BEGIN
  IMMEDIATE` means on SQLite. A unit that reads, then writes what it read, therefore needs no
  `SELECT … FOR UPDATE` and no stricter isolation level: no other writer commits between its
  statements. `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `ROLLBACK TO` and `RELEASE` are PostgreSQL's
  own; `commit()`, `rollback()` and `in_transaction` work as sqlite3's.
- Unlike SQLite, a statement that fails inside a transaction spoils the rest of it: only
  `ROLLBACK` or `ROLLBACK TO` a savepoint taken before it go on from there.
- Values: `bool` is stored as 1 or 0 (as sqlite3 does; the schema has no boolean columns);
  numbers PostgreSQL computes as NUMERIC (`SUM` of integers, `AVG`) come back as `int` when
  whole and `float` otherwise, as SQLite gives them; `bytes` ↔ `BYTEA`.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format, TransactionStatus

from cloud.db.dialect import pieces
from cloud.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait for a new session before the statement that wanted it fails.
CONNECT_TIMEOUT_S = 5

#: `pg_advisory_xact_lock` key of the writer lock ("sc-write" as a number).
WRITER_LOCK = int.from_bytes(b"sc-write", "big") & 0x7FFF_FFFF_FFFF_FFFF

_BEGIN = frozenset(
    {
        "BEGIN",
        "BEGIN TRANSACTION",
        "BEGIN DEFERRED",
        "BEGIN DEFERRED TRANSACTION",
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE TRANSACTION",
        "BEGIN EXCLUSIVE",
        "BEGIN EXCLUSIVE TRANSACTION",
    }
)


@lru_cache(maxsize=2048)
def placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, and every literal `%` doubled (psycopg reads `%`
    everywhere, inside quotes too); `?` inside quotes or comments is left alone."""
    out: list[str] = []
    for is_code, text in pieces(sql):
        text = text.replace("%", "%%")
        out.append(text.replace("?", "%s") if is_code else text)
    return "".join(out)


class Columns:
    """The names of a result's columns, shared by its rows."""

    __slots__ = ("index", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.index: dict[str, int] = {}
        for at, name in enumerate(self.names):
            self.index.setdefault(name, at)
        for at, name in enumerate(self.names):
            self.index.setdefault(name.lower(), at)


class Row:
    """One result row: by position, by column name (exact, else ignoring case, as
    sqlite3.Row), `keys()`, iteration, `len()`, `dict(row)`."""

    __slots__ = ("_columns", "_values")

    def __init__(self, values: Sequence[Any], columns: Columns) -> None:
        self._values = tuple(values)
        self._columns = columns

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            index = self._columns.index
            at = index.get(key)
            if at is None:
                at = index.get(key.lower())
                if at is None:
                    raise IndexError(f"no such column: {key}")
            return self._values[at]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._columns.names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return self._values == other._values and self.keys() == other.keys()

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self.keys(), self._values, strict=True))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    columns = Columns([column.name for column in cursor.description or ()])
    return lambda values: Row(values, columns)


class PgCursor(psycopg.Cursor[Row]):
    @property
    def lastrowid(self) -> int | None:
        raise psycopg.NotSupportedError(
            "PostgreSQL has no lastrowid: write INSERT … RETURNING id and read fetchone()[0]"
            " (SQLite runs the same statement)"
        )


class _BoolText(Dumper):
    """`True`/`False` as the integers 1 and 0, as sqlite3 stores them."""

    oid = psycopg.adapters.types["int2"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _BoolBinary(_BoolText):
    format = Format.BINARY

    def dump(self, obj: bool) -> bytes:
        return struct.pack("!h", 1 if obj else 0)


class _NumericAsNumber(Loader):
    """NUMERIC (PostgreSQL's `SUM` of integers, `AVG`) as SQLite gives such values."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


class PgConnection:
    """A psycopg connection dressed as the sqlite3 connection units of work expect.

    A lost session (the server restarted or was killed, a network cut noticed by the TCP
    keepalives) is opened again by itself — but never in the middle of a unit: once the
    session of an open transaction is lost, every statement fails with `DatabaseUnavailable`
    until the unit ends (`ROLLBACK`, or a `COMMIT` that fails the same way), so no unit is ever
    split over two sessions and nothing of it is committed. A statement that could not have
    changed anything — the `BEGIN` of a unit, or a read-only connection's statement outside a
    transaction — is sent again on a new session. While the server cannot be reached, every
    statement fails at once (within `CONNECT_TIMEOUT_S`)."""

    def __init__(
        self,
        conn: psycopg.Connection[Row],
        reopen: Callable[[], psycopg.Connection[Row]] | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self.raw = conn
        self._ended = _cursor(conn)  # what `execute("COMMIT")` and the like return
        self._reopen = reopen
        self._read_only = read_only
        #: a transaction was begun and not yet ended (on this session or one since lost)
        self._unit = False
        #: sessions opened again after one was lost
        self.reconnects = 0

    def _lost(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)

    def _live(self) -> psycopg.Connection[Row]:
        if self._lost():
            if self._unit:
                raise DatabaseUnavailable.said(
                    "数据库连接中断，本次操作未保存", "the database session was lost mid-unit"
                )
            if self._reopen is not None:
                try:
                    self.raw = self._reopen()
                except psycopg.OperationalError as exc:
                    raise _unavailable(exc) from exc
                self._ended = _cursor(self.raw)
                self.reconnects += 1
                log.warning("connected to PostgreSQL again (session %d)", self.reconnects + 1)
        return self.raw

    def _send(self, send: Callable[[psycopg.Connection[Row]], T], *, again: bool) -> T:
        """`send(session)`; on a lost session, once more on a new one if `again`."""
        raw = self._live()
        try:
            return send(raw)
        except psycopg.OperationalError as exc:
            if not self._lost():
                raise  # the statement's own fault
            if not again:
                raise _unavailable(exc) from exc
        raw = self._live()
        try:
            return send(raw)
        except psycopg.OperationalError as exc:
            if self._lost():
                raise _unavailable(exc) from exc
            raise

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        head = sql.lstrip()[:8].upper()
        if head.startswith("BEGIN") and _is_begin(sql):
            cursor = self._send(_begin_writing, again=not self._unit)
            self._unit = True
            return cursor
        if head.startswith(("COMMIT", "ROLLBACK", "END")) and _ends(sql):
            if _ends(sql) == "COMMIT":
                self.commit()
            else:
                self.rollback()
            return self._ended  # nothing to read from it
        args = tuple(params) if params is not None else ()
        return self._send(
            lambda raw: _cursor(raw).execute(placeholders(sql), args), again=self._resendable
        )

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        values = [tuple(row) for row in rows]

        def send(raw: psycopg.Connection[Row]) -> PgCursor:
            cursor = _cursor(raw)
            cursor.executemany(placeholders(sql), values)
            return cursor

        return self._send(send, again=self._resendable)

    @property
    def _resendable(self) -> bool:
        return self._read_only and not self.in_transaction

    def begin_snapshot(self) -> None:
        """A read-only transaction whose statements all see one snapshot (no writer lock)."""
        self._send(
            lambda raw: raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            again=not self._unit,
        )
        self._unit = True

    @property
    def in_transaction(self) -> bool:
        """In a transaction — also one whose session was lost, until it is ended."""
        if self._lost():
            return self._unit
        return self._unit or self.raw.info.transaction_status != TransactionStatus.IDLE

    def commit(self) -> None:
        """Commit on the unit's own session; if that session is lost, `DatabaseUnavailable`
        (nothing of the unit is known to be stored: units are written to be tried again)."""
        unit, self._unit = self._unit, False
        if self._lost():
            if unit:
                raise DatabaseUnavailable.said(
                    "数据库连接中断，本次操作未保存", "the database session was lost mid-unit"
                )
            return
        if self.raw.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            self.raw.execute("COMMIT")
        except psycopg.OperationalError as exc:
            if self._lost():
                raise _unavailable(exc) from exc
            raise

    def rollback(self) -> None:
        """End the unit; on a lost session there is nothing left to roll back."""
        self._unit = False
        if self._lost() or self.raw.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            self.raw.execute("ROLLBACK")
        except psycopg.OperationalError:
            if not self._lost():
                raise

    def close(self) -> None:
        self.raw.close()


def _cursor(raw: psycopg.Connection[Row]) -> PgCursor:
    cursor = raw.cursor()
    assert isinstance(cursor, PgCursor)
    return cursor


def _begin_writing(raw: psycopg.Connection[Row]) -> PgCursor:
    """A writing transaction, with the database's writer lock."""
    return _cursor(raw).execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})")


def _unavailable(exc: psycopg.OperationalError) -> DatabaseUnavailable:
    return DatabaseUnavailable.said(
        "数据库暂时无法连接，稍后自动重试", f"the database cannot be reached: {exc}".strip()
    )


def _ends(sql: str) -> str | None:
    """ "COMMIT" or "ROLLBACK" if `sql` ends the transaction (not `ROLLBACK TO` a savepoint)."""
    words = " ".join(sql.rstrip().rstrip(";").split()).upper()
    if words in ("COMMIT", "COMMIT TRANSACTION", "END", "END TRANSACTION"):
        return "COMMIT"
    if words in ("ROLLBACK", "ROLLBACK TRANSACTION"):
        return "ROLLBACK"
    return None


def _is_begin(sql: str) -> bool:
    return " ".join(sql.rstrip().rstrip(";").split()).upper() in _BEGIN


def connect(
    url: str, *, read_only: bool = False, application_name: str = "sc-cloud"
) -> PgConnection:
    """A connection to the database at `url` (libpq's URL form, several hosts too), in
    autocommit mode; `read_only`: every statement on it that would write fails. It opens a new
    session by itself when one is lost (`PgConnection`): with a multi-host URL and
    `target_session_attrs=read-write`, on whichever host is the primary then."""

    def open_session() -> psycopg.Connection[Row]:
        conn = psycopg.connect(
            url,
            autocommit=True,
            row_factory=_row_factory,
            cursor_factory=PgCursor,
            application_name=application_name,
            connect_timeout=CONNECT_TIMEOUT_S,
            # a server that vanished without closing the socket (a host down, a cable cut)
            # is noticed in about 5 + 3 × 2 s instead of the system's two hours
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        if read_only:
            # set once the session is open, not as a startup option: libpq's
            # `target_session_attrs=read-write` (a multi-host URL finding the primary) takes
            # a session that starts read-only for a standby and refuses it
            conn.execute("SET default_transaction_read_only = on")
        conn.adapters.register_dumper(bool, _BoolText)
        conn.adapters.register_dumper(bool, _BoolBinary)
        conn.adapters.register_loader("numeric", _NumericAsNumber)
        return conn

    try:
        first = open_session()
    except psycopg.OperationalError as exc:
        raise _unavailable(exc) from exc
    return PgConnection(first, reopen=open_session, read_only=read_only)
