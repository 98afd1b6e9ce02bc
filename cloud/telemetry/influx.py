"""The telemetry store on an InfluxDB server, through the v1 HTTP API that InfluxDB 1.x serves
natively and 2.x (v1 compatibility) and 3.x serve too: `POST /write` with line protocol and
`POST /query` with InfluxQL, over httpx.

Why not influxdb-client: tried here (1.50.0) against the Debian server, InfluxDB 1.6.7, with the
documented v1-compatibility settings (token "user:password", org "-", bucket "db/autogen"):
`ping()` returned True and `version()` "1.6.7~rc0", `health()` did not raise but reported status
"fail"; `ready()`, `write_api().write(...)` (POST /api/v2/write), `query_api().query(...)`
(POST /api/v2/query) and `buckets_api().find_buckets()` all raised `ApiException (404)
"404 page not found"`; the v2 API arrived in 1.8. The client has no InfluxQL / v1 write path,
and its async client needs aiohttp besides. So it cannot store or read anything on 1.6.7 while
looking healthy; this module does not use it.

With a `Retention` (the cloud passes its settings), the database keeps the raw points, 1-minute
and 1-hour aggregates for their periods through InfluxDB's retention policies and continuous
queries (`cloud/telemetry/influx_history.py`); without one, raw points are kept forever.

Data layout: measurement `reading`, tags `device`, `gateway`, `kind`, one float field per unit
name (`ch4_pct_lel=3.5`), millisecond timestamps. Samples of one device and time share a line.
Tag values are escaped per the line protocol; every name and string that reaches InfluxQL is
quoted and escaped, so a device id off the wire cannot change a query's meaning. The database
is created on first use (`CREATE DATABASE` is idempotent; a server that refuses it, e.g. a
non-admin account, must already have it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from cloud.telemetry import influx_history as history
from cloud.telemetry.base import Latest, Sample, StoreError, every_ms, from_ms, to_ms
from cloud.telemetry.history import Retention
from contract.models import Values

log = logging.getLogger(__name__)

MEASUREMENT = "reading"
LINES_PER_REQUEST = 5000
_NS_PER_MS = 1_000_000


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key for line protocol (backslashes are refused earlier,
    by `Sample`, so no escape is ambiguous)."""
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + _escape_influxql(name).replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    """An InfluxQL string literal, single-quoted."""
    return "'" + _escape_influxql(text).replace("'", "\\'") + "'"


def _escape_influxql(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class InfluxStore:
    """`TelemetryStore` on InfluxDB's v1 HTTP API."""

    def __init__(
        self,
        base_url: str,
        database: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.database = database
        #: keeps the history (None: raw points forever, as the database's default policy)
        self.history = (
            None
            if retention is None
            else history.History(self, MEASUREMENT, retention, clock, self._where_ms)
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(user, password or "") if user else None,
            headers={"Authorization": f"Token {token}"} if token else None,
            timeout=httpx.Timeout(timeout_s, connect=3.0),
        )
        self._database_ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"InfluxStore({self.base_url!r}, db={self.database!r})"

    async def __aenter__(self) -> InfluxStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- the interface --------------------------------------------------------------------

    async def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        lines = self.lines(samples)
        await self._ensure_database()
        for first in range(0, len(lines), LINES_PER_REQUEST):
            await self._write_body("\n".join(lines[first : first + LINES_PER_REQUEST]))
        if self.history is not None:
            self.history.note_late(min(to_ms(s.ts) for s in samples))

    async def query(
        self,
        *,
        gateway: str,
        device: str,
        field: str,
        start: datetime,
        end: datetime,
        every: timedelta | None = None,
    ) -> list[tuple[datetime, float]]:
        bucket = every_ms(every)
        if bucket is not None and self.history is not None:
            found = await self.history.bucket_means(
                gateway, device, field, to_ms(start), to_ms(end), bucket
            )
            if found is not None:
                return found
        column = f"{quote_ident(field)}::field"
        if bucket is None:
            statement = f"SELECT {column} FROM {quote_ident(MEASUREMENT)}"
        else:
            statement = f"SELECT mean({column}) FROM {quote_ident(MEASUREMENT)}"
        statement += self._where(gateway, device, start, end)
        if bucket is not None:
            statement += f" GROUP BY time({bucket}ms) fill(none)"
        rows = await self.select(statement)
        return [(from_ms(int(ts)), float(value)) for ts, value in rows if value is not None]

    async def mean(
        self, *, gateway: str, device: str, field: str, start: datetime, end: datetime
    ) -> float | None:
        statement = (
            f"SELECT mean({quote_ident(field)}::field) FROM {quote_ident(MEASUREMENT)}"
            + self._where(gateway, device, start, end)
        )
        for _ts, value in await self.select(statement):
            if value is not None:
                return float(value)
        return None

    async def latest(self, *, since: datetime) -> list[Latest]:
        """One `last()` per field of the contract, grouped by gateway and device, in one
        request (InfluxQL statements separated by `;`)."""
        lo = to_ms(since) * _NS_PER_MS
        names = list(Values.model_fields)
        statement = ";".join(
            f"SELECT last({quote_ident(name)}::field) FROM {quote_ident(MEASUREMENT)}"
            f" WHERE time >= {lo} GROUP BY {quote_ident('gateway')}, {quote_ident('device')}"
            for name in names
        )
        await self._ensure_database()
        params = {"db": self.database, "epoch": "ms"}
        response = await self._request(
            "latest", "POST", "/query", params=params, data={"q": statement}
        )
        if not response.is_success:
            raise StoreError(f"{self!r}: query refused: {_problem(response)}")
        try:
            results = response.json().get("results", [])
        except ValueError as exc:
            raise StoreError(f"{self!r}: query answer is not JSON: {exc}") from exc
        out: list[Latest] = []
        for result in results:
            if "error" in result:
                raise StoreError(f"{self!r}: query failed: {result['error']} (latest)")
            name = names[int(result.get("statement_id", 0))]
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for ts, value in series.get("values", []):
                    if value is not None:
                        out.append(
                            Latest(
                                tags["gateway"],
                                tags["device"],
                                name,
                                from_ms(int(ts)),
                                float(value),
                            )
                        )
        return out

    async def ping(self) -> None:
        """The database exists (or is created), accepts a write (an empty one, which 1.x checks
        for database and permission like any other) and answers a query."""
        await self._ensure_database()
        await self._write_body("")
        await self.select("SHOW MEASUREMENTS LIMIT 1")

    async def maintain(self) -> str:
        """Roll up the readings that came too late for the continuous queries; the server
        itself deletes what is past each policy. Without a retention: nothing."""
        if self.history is None:
            return "raw points under the database's own retention policy"
        await self._ensure_database()
        if not self.history.ready:
            await self.history.set_up()  # refused before: tried again, raising if it still is
        return await self.history.roll_up()

    async def close(self) -> None:
        self._closed = True
        await self._http.aclose()

    # ---- line protocol and InfluxQL -------------------------------------------------------

    @staticmethod
    def lines(samples: Sequence[Sample]) -> list[str]:
        """Line protocol for the samples, one line per (gateway, device, kind, ms)."""
        points: dict[tuple[str, str, str, int], dict[str, float]] = {}
        for s in samples:
            points.setdefault((s.gateway, s.device, s.kind, to_ms(s.ts)), {})[s.field] = s.value
        return [
            f"{MEASUREMENT},device={escape_tag(device)},gateway={escape_tag(gateway)},"
            f"kind={escape_tag(kind)} "
            + ",".join(f"{escape_tag(name)}={value!r}" for name, value in fields.items())
            + f" {ms}"
            for (gateway, device, kind, ms), fields in points.items()
        ]

    @classmethod
    def _where(cls, gateway: str, device: str, start: datetime, end: datetime) -> str:
        return cls._where_ms(gateway, device, to_ms(start), to_ms(end))

    @staticmethod
    def _where_ms(gateway: str, device: str, lo_ms: int, hi_ms: int) -> str:
        lo, hi = lo_ms * _NS_PER_MS, hi_ms * _NS_PER_MS
        return (
            f" WHERE {quote_ident('gateway')}::tag = {quote_string(gateway)}"
            f" AND {quote_ident('device')}::tag = {quote_string(device)}"
            f" AND time >= {lo} AND time < {hi}"
        )

    # ---- HTTP -----------------------------------------------------------------------------

    async def _ensure_database(self) -> None:
        if self._database_ready:
            return
        statement = f"CREATE DATABASE {quote_ident(self.database)}"
        response = await self._request("create database", "POST", "/query", data={"q": statement})
        problem = _problem(response)
        if problem:
            log.info("%r: %s refused (%s); assuming the database exists", self, statement, problem)
        self._database_ready = True
        if self.history is not None:
            try:
                await self.history.set_up()
            except StoreError as exc:
                # e.g. an account that may write but not make policies: the readings are
                # stored and read raw meanwhile; `maintain` tries again every minute
                log.error("%r: history not set up, raw points only for now: %s", self, exc)

    async def continuous_queries(self) -> set[str]:
        """The names of this database's continuous queries (the server lists every
        database's, one series each)."""
        response = await self._request(
            "continuous queries", "POST", "/query", data={"q": "SHOW CONTINUOUS QUERIES"}
        )
        if not response.is_success:
            raise StoreError(f"{self!r}: SHOW CONTINUOUS QUERIES refused: {_problem(response)}")
        names: set[str] = set()
        for result in response.json().get("results", []):
            for series in result.get("series", []):
                if series.get("name") == self.database:
                    names.update(row[0] for row in series.get("values", []))
        return names

    async def run(self, statement: str, what: str) -> None:
        """A statement whose answer is only whether it worked; points a roll-up would write
        past a policy's duration are dropped by the server, which is what retention means."""
        response = await self._request(
            what, "POST", "/query", params={"db": self.database}, data={"q": statement}
        )
        problem = _problem(response)
        if problem and "points beyond retention policy" not in problem:
            raise StoreError(f"{self!r}: {what} failed: {problem} ({statement})")

    async def _write_body(self, body: str) -> None:
        params = {"db": self.database, "precision": "ms"}
        content = body.encode("utf-8")
        response = await self._request("write", "POST", "/write", params=params, content=content)
        if response.status_code == 404 and "database not found" in response.text:
            self._database_ready = False  # dropped behind our back: create it and try again once
            await self._ensure_database()
            response = await self._request(
                "write", "POST", "/write", params=params, content=content
            )
        if not response.is_success:
            problem = _problem(response)
            if "points beyond retention policy" in problem:
                # older than the raw policy keeps: what the server is there to drop
                log.info("%r: readings older than the raw retention dropped: %s", self, problem)
                return
            raise StoreError(f"{self!r}: write refused: {problem}")

    async def select(self, statement: str) -> list[list[Any]]:
        """Rows of the one statement's result (all series joined), read in chunks."""
        await self._ensure_database()
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        params = {"db": self.database, "epoch": "ms", "chunked": "true", "chunk_size": "10000"}
        rows: list[list[Any]] = []
        try:
            async with self._http.stream(
                "POST", "/query", params=params, data={"q": statement}
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise StoreError(f"{self!r}: query refused: {_problem(response)}")
                async for line in response.aiter_lines():
                    if line.strip():
                        rows.extend(self._rows(json.loads(line), statement))
        except httpx.HTTPError as exc:
            raise self._unreachable("query", exc) from exc
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self!r}: query answer is not JSON: {exc}") from exc
        return rows

    def _rows(self, chunk: dict[str, Any], statement: str) -> list[list[Any]]:
        if "error" in chunk:
            raise StoreError(f"{self!r}: query failed: {chunk['error']} ({statement})")
        rows: list[list[Any]] = []
        for result in chunk.get("results", []):
            if "error" in result:
                raise StoreError(f"{self!r}: query failed: {result['error']} ({statement})")
            for series in result.get("series", []):
                rows.extend(series.get("values", []))
        return rows

    async def _request(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(what, exc) from exc

    def _unreachable(self, what: str, exc: httpx.HTTPError) -> StoreError:
        detail = str(exc) or "no detail"
        return StoreError(
            f"{self!r}: {what} failed, server unreachable: {type(exc).__name__}: {detail}"
        )


def _problem(response: httpx.Response) -> str:
    """The server's own words for a failed request ('' when it succeeded)."""
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            return ""
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        return "; ".join(errors)
    try:
        message = response.json().get("error") or response.text
    except ValueError:
        message = response.text
    return f"HTTP {response.status_code}: {str(message).strip()[:500]}"
