"""Which database the cloud keeps its records in, from the `database` setting
(`SC_CLOUD_DATABASE`):

- a path, or `sqlite:///abs/path.db` / `sqlite://relative/path.db` (as the telemetry store's
  URL): SQLite, the embedded default (one community box, the demo);
- `postgresql://user:password@host:port/database` (or `postgres://…`, and any libpq
  parameters after `?`): PostgreSQL (servers, several cloud processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

Backend = Literal["sqlite", "postgresql"]


class DatabaseUrlError(ValueError):
    """A `database` setting that names no database we can open."""


@dataclass(frozen=True)
class DatabaseUrl:
    backend: Backend
    #: SQLite: the file's path (or ":memory:"); PostgreSQL: the libpq connection URL
    target: str

    @classmethod
    def parse(cls, value: str | Path) -> DatabaseUrl:
        if isinstance(value, Path):
            return cls("sqlite", str(value))
        text = value.strip()
        if not text:
            raise DatabaseUrlError("数据库未配置 / no database given")
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme == "":
            return cls("sqlite", text)
        if scheme == "sqlite":
            path = unquote(text[len("sqlite://") :].split("?", 1)[0])
            if path in ("", "/"):
                raise DatabaseUrlError(
                    f"SQLite 地址缺少文件 / {value!r} names no file (sqlite:///path/to/cloud.db)"
                )
            return cls("sqlite", path)
        if scheme in ("postgresql", "postgres"):
            parts = urlsplit(text)
            if not parts.path.strip("/"):
                raise DatabaseUrlError(
                    "PostgreSQL 地址缺少数据库名 / the URL names no database:"
                    f" {_without_password(text)}"
                )
            return cls("postgresql", urlunsplit(("postgresql", *parts[1:])))
        raise DatabaseUrlError(
            f"不支持的数据库 {scheme!r} / unsupported database {scheme!r}: use a path,"
            " sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )

    def __str__(self) -> str:
        """For logs: the password left out."""
        if self.backend == "sqlite":
            return f"sqlite://{self.target}"
        return _without_password(self.target)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
