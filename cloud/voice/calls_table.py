"""The voice calls in the database (`voice_calls`), so that every cloud process sees the same
calls: the one that offered a call (it raised the call alarm), the one the gateway's answers
reach (it holds the gateway's ingest shard) and the one an operator's page talks to may be
three. Functions for a unit of work (`Database.read` / `write`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloud.db.database import Conn
from cloud.voice.call import Call, CallStatus

#: states in which a call holds its gateway's speakerphone (or is being offered to it)
HOLDING = (CallStatus.OFFERING, CallStatus.RINGING, CallStatus.ANSWERED, CallStatus.CONNECTED)
_HOLDING = ", ".join(f"'{s.value}'" for s in HOLDING)
_COLUMNS = (
    "id, alarm_id, gateway, device, status, sdp, offered_at, answered_at, answered_by,"
    " connected_at, ended_at, ended_by, reason, prompt_played, callback_by, offer_command"
)


def _at(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def _call(row: Any) -> Call:
    return Call(
        id=row["id"],
        alarm_id=row["alarm_id"],
        gateway=row["gateway"],
        device=row["device"],
        status=CallStatus(row["status"]),
        sdp=row["sdp"],
        offered_at=_time(row["offered_at"]),
        answered_at=_time(row["answered_at"]),
        answered_by=row["answered_by"],
        connected_at=_time(row["connected_at"]),
        ended_at=_time(row["ended_at"]),
        ended_by=row["ended_by"],
        reason=row["reason"],
        prompt_played=bool(row["prompt_played"]),
        callback_by=row["callback_by"],
    )


def save(conn: Conn, call: Call, offer_command: str | None = None) -> None:
    """Store the call, new or changed (and the id of the command that offered it, if given)."""
    values = (
        call.id,
        call.alarm_id,
        call.gateway,
        call.device,
        call.status.value,
        call.sdp,
        _at(call.offered_at),
        _at(call.answered_at),
        call.answered_by,
        _at(call.connected_at),
        _at(call.ended_at),
        call.ended_by,
        call.reason,
        int(call.prompt_played),
        call.callback_by,
        offer_command,
    )
    conn.execute(
        "INSERT INTO voice_calls (id, alarm_id, gateway, device, status, sdp, offered_at,"
        " answered_at, answered_by, connected_at, ended_at, ended_by, reason, prompt_played,"
        " callback_by, offer_command) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (id) DO UPDATE SET status = excluded.status, sdp = excluded.sdp,"
        " answered_at = excluded.answered_at, answered_by = excluded.answered_by,"
        " connected_at = excluded.connected_at, ended_at = excluded.ended_at,"
        " ended_by = excluded.ended_by, reason = excluded.reason,"
        " prompt_played = excluded.prompt_played,"
        " offer_command = COALESCE(excluded.offer_command, voice_calls.offer_command)",
        values,
    )


def get(conn: Conn, call_id: str) -> Call | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM voice_calls WHERE id = ?", (call_id,)).fetchone()
    return None if row is None else _call(row)


def by_offer(conn: Conn, command_id: str) -> Call | None:
    """The call a command offered (the gateway's replies name that command)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM voice_calls WHERE offer_command = ?", (command_id,)
    ).fetchone()
    return None if row is None else _call(row)


def listing(conn: Conn, ended_since: float) -> list[Call]:
    """Calls in progress, and those that ended since `ended_since`, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM voice_calls WHERE ended_at IS NULL OR ended_at >= ?"
        " ORDER BY offered_at, id",
        (ended_since,),
    )
    return [_call(row) for row in rows]


def live_for_alarm(conn: Conn, alarm_id: int) -> list[Call]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM voice_calls WHERE alarm_id = ? AND ended_at IS NULL",
        (alarm_id,),
    )
    return [_call(row) for row in rows]


def of_gateway(conn: Conn, gateway: str) -> list[Call]:
    """The gateway's calls in progress (waiting ones too), oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM voice_calls WHERE gateway = ? AND ended_at IS NULL"
        " ORDER BY offered_at, id",
        (gateway,),
    )
    return [_call(row) for row in rows]


def busy(conn: Conn, gateway: str) -> Call | None:
    """The call the gateway's speakerphone is in (or being offered), if any."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM voice_calls WHERE gateway = ? AND status IN ({_HOLDING})"
        " ORDER BY offered_at LIMIT 1",
        (gateway,),
    ).fetchone()
    return None if row is None else _call(row)


def alarm_resolved(conn: Conn, alarm_id: int) -> bool:
    row = conn.execute("SELECT state FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    return row is not None and row["state"] == "resolved"
