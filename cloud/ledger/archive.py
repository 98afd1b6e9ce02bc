"""The record's archive: alarms with their whole log and notifications, and the audit, of a
period, copied out of the system of record for cold storage or handing over.

    python -m cloud.ledger.archive --database /var/lib/sc/cloud.db --out /srv/archive/2025 \\
        --from 2025-01-01 --to 2026-01-01

GB/T 45839 expects the records kept at least a year. The cloud never deletes an alarm, a line
of its log, a notification or an audit entry (the database keeps them for as long as it is
kept); this copies a period of them out, read-only, in one snapshot of the database:

- `alarms.jsonl`: one alarm a line (every column, times in seconds since the epoch), with its
  `log` (who did what, when) and its `notifications`, for alarms received in the period;
- `audit.jsonl`: the audit entries of the period;
- `manifest.json`: the period, the counts and each file's SHA-256, so a copy can be checked.

Periods are Beijing-time dates, `--from` included, `--to` not. SQLite or PostgreSQL
(`--database` takes what `SC_CLOUD_DATABASE` takes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cloud.db.database import Conn, Database, Row
from cloud.ledger.filters import BEIJING


@dataclass(frozen=True)
class Archived:
    alarms: int
    audit: int
    folder: Path


def _start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp()


def _as_dict(row: Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row has no __iter__ of keys)


def _lines(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in records
    )


async def archive(db: Database, folder: Path, first: date, until: date) -> Archived:
    """Copy the alarms received and the audit entries written in [first, until) to `folder`."""
    if until <= first:
        raise ValueError(f"--to {until} must be after --from {first}")
    lo, hi = _start(first), _start(until)

    def read(conn: Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        alarms = [
            _as_dict(r)
            for r in conn.execute(
                "SELECT * FROM alarms WHERE received_at >= ? AND received_at < ? ORDER BY id",
                (lo, hi),
            ).fetchall()
        ]
        for alarm in alarms:
            alarm["log"] = [
                _as_dict(r)
                for r in conn.execute(
                    "SELECT at, actor, action, detail FROM alarm_log WHERE alarm_id = ?"
                    " ORDER BY id",
                    (alarm["id"],),
                ).fetchall()
            ]
            alarm["notifications"] = [
                _as_dict(r)
                for r in conn.execute(
                    "SELECT * FROM notifications WHERE alarm_id = ? ORDER BY id", (alarm["id"],)
                ).fetchall()
            ]
        audit = [
            _as_dict(r)
            for r in conn.execute(
                "SELECT * FROM audit WHERE at >= ? AND at < ? ORDER BY id", (lo, hi)
            ).fetchall()
        ]
        return alarms, audit

    alarms, audit = await db.read(read)
    await asyncio.to_thread(_write, folder, first, until, alarms, audit)
    return Archived(len(alarms), len(audit), folder)


def _write(
    folder: Path,
    first: date,
    until: date,
    alarms: list[dict[str, Any]],
    audit: list[dict[str, Any]],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"alarms.jsonl": _lines(alarms), "audit.jsonl": _lines(audit)}
    for name, body in files.items():
        (folder / name).write_bytes(body)
    manifest = {
        "from": first.isoformat(),
        "to": until.isoformat(),
        "timezone": "Asia/Shanghai",
        "alarms": len(alarms),
        "audit": len(audit),
        "sha256": {name: hashlib.sha256(body).hexdigest() for name, body in files.items()},
        "made_at": datetime.now(BEIJING).isoformat(timespec="seconds"),
    }
    (folder / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


async def _main(args: argparse.Namespace) -> Archived:
    db = await Database.open(args.database)
    try:
        return await archive(db, Path(args.out), args.first, args.until)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloud.ledger.archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database", required=True, help="path, sqlite://… or postgresql://…")
    parser.add_argument("--out", required=True, help="folder for the archive's files")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    parser.add_argument("--to", dest="until", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    try:
        done = asyncio.run(_main(args))
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{done.alarms} alarms and {done.audit} audit entries archived to {done.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
