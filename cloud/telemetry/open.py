"""`open_store(url)`: the telemetry store a URL names (SQLite or InfluxDB)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from cloud.telemetry.base import TelemetryStore
from cloud.telemetry.history import Retention
from cloud.telemetry.influx import InfluxStore
from cloud.telemetry.sqlite import SqliteStore


def open_store(url: str, *, retention: Retention | None = None) -> TelemetryStore:
    """The store a URL names. Nothing is connected until first use (or `ping()`).

    - `sqlite:///abs/path.db`, `sqlite://relative/path.db`, `sqlite://:memory:`
    - `influx://host[:8086]/dbname` (`influxs://` for HTTPS); credentials as
      `?user=...&password=...` or `influx://user:password@host/db`; `?token=...` sends
      `Authorization: Token ...` (InfluxDB 2.x/3.x).

    `retention`: how long raw points and the 1-minute and 1-hour aggregates are kept (SQLite:
    its default when None; InfluxDB: its policies and continuous queries, raw points kept
    forever when None).
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme (sqlite:// or influx://)")
    if scheme == "sqlite":
        return _sqlite(rest.split("?", 1)[0], url, retention)
    if scheme in ("influx", "influxs"):
        return _influx(url, https=scheme == "influxs", retention=retention)
    raise ValueError(f"store URL {url!r}: unknown scheme {scheme!r} (sqlite:// or influx://)")


def _sqlite(path: str, url: str, retention: Retention | None) -> SqliteStore:
    if not path:
        raise ValueError(f"store URL {url!r} names no file (sqlite:///path/to/file.db)")
    return SqliteStore(unquote(path), retention=retention)


def _influx(url: str, *, https: bool, retention: Retention | None) -> InfluxStore:
    parts = urlsplit(url)
    database = unquote(parts.path.strip("/"))
    if not parts.hostname or not database or "/" in database:
        raise ValueError(f"store URL {url!r}: expected influx://host[:port]/dbname")
    try:
        port = parts.port or 8086
    except ValueError as exc:
        raise ValueError(f"store URL {url!r}: {exc}") from None
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(options) - {"user", "password", "token"}
    if unknown:
        raise ValueError(f"store URL {url!r}: unknown options {sorted(unknown)}")
    user = options.get("user") or (unquote(parts.username) if parts.username else None)
    password = options.get("password") or (unquote(parts.password) if parts.password else None)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return InfluxStore(
        f"{'https' if https else 'http'}://{host}:{port}",
        database,
        user=user,
        password=password,
        token=options.get("token"),
        retention=retention,
    )
