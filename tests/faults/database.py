"""The cloud's PostgreSQL for a scenario that runs the cloud on one (`Stack(postgres=True)`): a
server of the scenario's own (Debian's PostgreSQL, tests/servers.py), durable as a real one
(`fsync`, `full_page_writes` and `synchronous_commit` on), its data folder in the scenario's
work folder, stopped by its own process id. `wal_level=logical` lets the fault suite read the
storing order (tests/faults/records.py)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.faults.records import PostgresRecords
from tests.servers import PostgreSQL, free_port

#: The cloud's database on the server (the cloud makes its tables on its first start).
DATABASE = "sc"


#: The cloud's sessions in a transaction that has written (has a transaction id).
_WRITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_xid IS NOT NULL"
    " AND application_name = 'sc-cloud' AND pid <> pg_backend_pid()"
)


class CloudPostgres:
    def __init__(self, workdir: Path):
        self.server = PostgreSQL(
            workdir=workdir, port=free_port(), durable=True, settings={"wal_level": "logical"}
        )
        self.url = self.server.url(DATABASE)
        self.records = PostgresRecords(self.url)
        self.started_at = 0.0  # time.time() of the newest start (accepting connections)
        self._made = False

    def start(self) -> float:
        """Start the server (after a kill -9: its crash recovery on the same data folder) and
        wait until it accepts connections; returns that moment (time.time()). The first start
        makes the cloud's database and starts recording the storing order."""
        self.server.start()
        if not self._made:
            with psycopg.connect(self.server.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            self.records.watch()
            self._made = True
        self.started_at = time.time()
        return self.started_at

    def kill9(self) -> float:
        """kill -9 of the server and every backend (its process group); returns when
        (time.time()). Down until started again."""
        self.server.kill9()
        return time.time()

    def kill9_while_writing(self, within_s: float) -> tuple[float, bool]:
        """kill -9 as soon as one of the cloud's sessions is inside a writing transaction (it
        has written a row: a unit of work in flight), or after `within_s` if none was seen.
        Returns when (time.time()) and whether one was seen."""
        deadline = time.monotonic() + within_s
        seen = False
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not seen and time.monotonic() < deadline:
                row = conn.execute(_WRITING, (DATABASE,)).fetchone()
                seen = row is not None and row[0] > 0
        return self.kill9(), seen

    def stop(self) -> None:
        """A fast shutdown, by its process id."""
        self.server.stop()
