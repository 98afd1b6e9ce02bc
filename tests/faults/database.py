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


#: A standby that never comes, and the cloud's sessions whose commit waits for it.
_NO_STANDBY = "sc_faults_no_standby"
_AT_COMMIT = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event = 'SyncRep'"
    " AND application_name = 'sc-cloud'"
)


class CloudPostgres:
    def __init__(self, workdir: Path):
        self.server = PostgreSQL(
            workdir=workdir, port=free_port(), durable=True, settings={"wal_level": "logical"}
        )
        self.url = self.server.url(DATABASE)
        self.records = PostgresRecords(self.url)
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
        return time.time()

    def kill9(self) -> float:
        """kill -9 of the server and every backend (its process group); returns when
        (time.time()). Down until started again."""
        self.server.kill9()
        return time.time()

    def kill9_at_commit(self, within_s: float) -> tuple[float, bool]:
        """kill -9 while one of the cloud's commits is written but not answered: from now on
        the server waits, after writing a commit to disk, for a synchronous standby that does
        not exist (`synchronous_standby_names`), so a unit of work that commits stays in
        flight; the kill comes as soon as one waits (or after `within_s`). After the restart
        (crash recovery) those commits are there although the cloud never heard of them.
        Returns when (time.time()) and whether a commit was waiting."""
        deadline = time.monotonic() + within_s
        waiting = False
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{_NO_STANDBY}'")
            conn.execute("SELECT pg_reload_conf()")
            while not waiting and time.monotonic() < deadline:
                row = conn.execute(_AT_COMMIT, (DATABASE,)).fetchone()
                waiting = row is not None and row[0] > 0
        began = self.kill9()
        # the next start answers commits again (the server is down: its own file, edited)
        auto = self.server.data_dir / "postgresql.auto.conf"
        lines = auto.read_text().splitlines(keepends=True)
        auto.write_text("".join(x for x in lines if not x.startswith("synchronous_standby_names")))
        return began, waiting

    def stop(self) -> None:
        """A fast shutdown, by its process id."""
        self.server.stop()
