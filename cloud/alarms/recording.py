"""One unit of work of the alarm book, on the database thread: messages stored by id, and the
rules' decisions about them raised, repeated, cleared or noted as inhibited.

Cheap per message on purpose (it is the hot path): an alarm's row is read once per unit and
kept (a burst of repeats of one alarm reads it once), repeats of one alarm are written as one
UPDATE when the unit ends or before anything else touches it, and every alarm touched is read
back once at the end, after all its changes — so a hundred repeats of one smoke alarm in a
batch cost one read, one update, a hundred log lines and one read back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cloud.alarms.arrivals import Arrival
from cloud.alarms.model import (
    LEVEL_NAMES,
    SYSTEM,
    WORKED,
    Alarm,
    AlarmState,
    Mode,
    Outcome,
    Raised,
)
from cloud.alarms.model import open_key as make_open_key
from cloud.alarms.rows import log
from cloud.alarms.timers import END_PLAN
from cloud.db.database import Conn
from cloud.errors import CloudError
from cloud.rules import AlarmDraft, Clear, Evaluation, Key
from cloud.site.registry import Registry


class NoPlace(CloudError):
    """A decision about a device or gateway the registry does not place (a bug upstream)."""


@dataclass(slots=True)
class _Open:
    """An open alarm as this unit knows it, with the repeats not written yet."""

    id: int
    level: int
    life_safety: bool
    mode: str
    received_at: float
    accept_by: float | None
    repeats: int = 0
    value: float | None = None
    event_id: str | None = None
    logs: list[str] = field(default_factory=list)
    dirty: bool = False


@dataclass(slots=True)
class _Touched:
    alarm_id: int
    new: bool
    change: str


class Recording:
    """One unit of work (make one per transaction)."""

    def __init__(
        self,
        registry: Registry,
        now: float,
        budget_for: Callable[[str, int], float | None] | None,
    ) -> None:
        self.registry = registry
        self.now = now
        self.budget_for = budget_for
        self._open: dict[str, _Open | None] = {}

    # ---- the units ----------------------------------------------------------------------------

    def store(
        self,
        conn: Conn,
        plans: Sequence[tuple[Arrival, Evaluation] | Exception | None],
        extra: Callable[[Conn], None] | None,
    ) -> list[list[Raised] | Exception | None]:
        """The messages of a batch with what the rules decided, in order. Tried first as one
        piece (repeats of an alarm written once for the whole batch); if any message fails,
        that is undone and each message is stored under a savepoint of its own, so the one
        that fails leaves nothing behind and spoils none of the others."""
        if extra is not None:
            extra(conn)
        conn.execute("SAVEPOINT batch")
        try:
            results = self._store_together(conn, plans)
        except Exception:
            conn.execute("ROLLBACK TO batch")
            self._open.clear()  # what was read inside the savepoint may be gone
            results = self._store_each(conn, plans)
        conn.execute("RELEASE batch")
        alarms = self._read_back(conn, results)
        return [r if r is None or isinstance(r, Exception) else _raised(r, alarms) for r in results]

    def _store_together(
        self, conn: Conn, plans: Sequence[tuple[Arrival, Evaluation] | Exception | None]
    ) -> list[list[_Touched] | Exception | None]:
        results = [
            plan if plan is None or isinstance(plan, Exception) else self._one(conn, *plan)
            for plan in plans
        ]
        self._flush(conn)
        return results

    def _store_each(
        self, conn: Conn, plans: Sequence[tuple[Arrival, Evaluation] | Exception | None]
    ) -> list[list[_Touched] | Exception | None]:
        results: list[list[_Touched] | Exception | None] = []
        for plan in plans:
            if plan is None or isinstance(plan, Exception):
                results.append(plan)
                continue
            conn.execute("SAVEPOINT arrival")
            try:
                touched = self._one(conn, *plan)
                self._flush(conn)  # a savepoint must not roll back another message's repeats
            except Exception as exc:  # this message only: the others go on
                conn.execute("ROLLBACK TO arrival")
                conn.execute("RELEASE arrival")
                self._open.clear()  # what was read inside the savepoint may be gone
                results.append(exc)
                continue
            conn.execute("RELEASE arrival")
            results.append(touched)
        return results

    def _one(self, conn: Conn, arrival: Arrival, evaluation: Evaluation) -> list[_Touched] | None:
        """Store a message's id and, if it is new, what the rules decided about it."""
        cursor = conn.execute(arrival.sql, arrival.params)
        return self._decide(conn, evaluation, arrival.at) if cursor.rowcount else None

    def apply(self, conn: Conn, evaluation: Evaluation, at: float) -> list[Raised]:
        touched = self._decide(conn, evaluation, at)
        self._flush(conn)
        return _raised(touched, self._read_back(conn, [touched]))

    # ---- decisions ----------------------------------------------------------------------------

    def _decide(self, conn: Conn, evaluation: Evaluation, received_at: float) -> list[_Touched]:
        out: list[_Touched] = []
        for decision in evaluation.decisions:
            if isinstance(decision, Clear):
                cleared = self._clear(conn, decision)
                if cleared is not None:
                    out.append(cleared)
            else:
                out.append(self._raise(conn, decision, received_at))
        for source, muted in evaluation.inhibited:
            self._note_inhibited(conn, source, muted)
        return out

    def _lookup(self, conn: Conn, key: str) -> _Open | None:
        if key not in self._open:
            row = conn.execute(
                "SELECT id, level, life_safety, mode, received_at, accept_by FROM alarms"
                " WHERE open_key = ?",
                (key,),
            ).fetchone()
            self._open[key] = (
                None
                if row is None
                else _Open(
                    row["id"],
                    row["level"],
                    bool(row["life_safety"]),
                    row["mode"],
                    row["received_at"],
                    row["accept_by"],
                )
            )
        return self._open[key]

    def _raise(self, conn: Conn, draft: AlarmDraft, received_at: float) -> _Touched:
        key = make_open_key(draft.gateway, draft.device, draft.rule, draft.mode, draft.window)
        known = self._lookup(conn, key)
        if known is not None:
            return self._repeat(known, draft)
        alarm_id = self._insert(conn, draft, key, received_at)
        self._open[key] = _Open(
            alarm_id,
            draft.level,
            draft.life_safety,
            draft.mode,
            received_at,
            self._accept_by(draft.rule, draft.level, received_at) if draft.mode in WORKED else None,
        )
        return _Touched(alarm_id, True, "raised")

    def _repeat(self, known: _Open, draft: AlarmDraft) -> _Touched:
        """A repeat, kept until the unit writes it (one UPDATE for many)."""
        level = min(known.level, draft.level)
        latched = known.life_safety or draft.life_safety
        if level < known.level and known.mode in WORKED:
            # more severe now: the budget of the new level, if that is shorter
            tighter = self._accept_by(draft.rule, level, known.received_at)
            if tighter is not None:
                known.accept_by = (
                    tighter if known.accept_by is None else min(known.accept_by, tighter)
                )
        # Every repeated event is logged; a reading that stays beyond a bound is counted, and
        # logged only when it makes the alarm more severe.
        if draft.event_id is not None or level < known.level:
            detail = f"level {LEVEL_NAMES[draft.level]}"
            if draft.value is not None:
                detail += f", value {draft.value}"
            if level < known.level:
                detail += f"; raised from level {LEVEL_NAMES[known.level]}"
            if latched and not known.life_safety:
                detail += "; life safety now: latched, an operator closes it"
            known.logs.append(detail)
        known.level, known.life_safety = level, latched
        known.repeats += 1
        if draft.value is not None:
            known.value = draft.value
        if draft.event_id is not None:
            known.event_id = draft.event_id
        known.dirty = True
        return _Touched(known.id, False, "repeat")

    def _flush(self, conn: Conn) -> None:
        """Write the repeats kept so far."""
        for known in self._open.values():
            if known is None or not known.dirty:
                continue
            conn.execute(
                "UPDATE alarms SET repeats = repeats + ?, level = ?, value = COALESCE(?, value),"
                " last_event_id = COALESCE(?, last_event_id), life_safety = ?,"
                " group_key = CASE WHEN ? = 1 THEN NULL ELSE group_key END, cleared_at = NULL,"
                " accept_by = ? WHERE id = ?",
                (
                    known.repeats,
                    known.level,
                    known.value,
                    known.event_id,
                    int(known.life_safety),
                    int(known.life_safety),
                    known.accept_by,
                    known.id,
                ),
            )
            conn.executemany(
                "INSERT INTO alarm_log (alarm_id, at, actor, action, detail)"
                " VALUES (?,?,?,'repeat',?)",
                [(known.id, self.now, SYSTEM, detail) for detail in known.logs],
            )
            known.repeats, known.value, known.event_id = 0, None, None
            known.logs.clear()
            known.dirty = False

    def _insert(self, conn: Conn, draft: AlarmDraft, key: str, received_at: float) -> int:
        info = self.registry.device(draft.gateway, draft.device)
        place = info.place if info else self.registry.gateway_place(draft.gateway)
        if place is None:  # ingest checks the registry first; this is a programming error
            raise NoPlace(f"no place for {draft.gateway}/{draft.device}")
        live = draft.mode == Mode.LIVE
        worked = draft.mode in WORKED  # a drill's: on the board with a budget, escalated never
        group_key = (
            None if draft.life_safety else f"{place.building_id}/{draft.group or draft.kind}"
        )
        now = self.now
        cursor = conn.execute(
            "INSERT INTO alarms (rule, level, kind, gateway, device, model, street_id,"
            " community_id, community, grid_id, grid, building_id, building, home_id, home,"
            " title_zh, title_en, value, first_event_id, last_event_id, state, open_key,"
            " device_ts, received_at, stored_at, mode, window_id, life_safety, group_key,"
            " notify_step, notify_due_at, accept_by)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " RETURNING id",
            (
                draft.rule,
                draft.level,
                draft.kind,
                draft.gateway,
                draft.device,
                info.model if info else "gateway",
                place.street_id,
                place.community_id,
                place.community,
                place.grid_id,
                place.grid,
                place.building_id,
                place.building,
                place.home_id,
                place.home,
                draft.title_zh,
                draft.title_en,
                draft.value,
                draft.event_id,
                draft.event_id,
                AlarmState.ACTIVE.value,
                key,
                draft.device_ts.timestamp(),
                received_at,
                now,
                draft.mode,
                draft.window,
                int(draft.life_safety),
                group_key,
                # the escalator runs step 0 (the first notifications) at once
                0 if live else None,
                now if live else None,
                self._accept_by(draft.rule, draft.level, received_at) if worked else None,
            ),
        )
        alarm_id = int(cursor.fetchone()[0])
        detail = f"level {LEVEL_NAMES[draft.level]}"
        if draft.mode == Mode.DRILL:
            detail += f"; drill #{draft.window}: on the duty room's board, told to nobody else"
        elif not live:
            detail += (
                f"; {draft.mode} #{draft.window}: recorded as a test, not sent to the duty room"
            )
        _log(conn, alarm_id, "raised", detail, now)
        return alarm_id

    def _accept_by(self, rule: str, level: int, received_at: float) -> float | None:
        budget = self.budget_for(rule, level) if self.budget_for is not None else None
        return None if budget is None else received_at + budget

    def _clear(self, conn: Conn, clear: Clear) -> _Touched | None:
        key = make_open_key(clear.gateway, clear.device, clear.rule, clear.mode, clear.window)
        self._flush(conn)
        row = conn.execute(
            "SELECT id, state, life_safety FROM alarms WHERE open_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        now = self.now
        alarm_id = row["id"]
        if row["life_safety"]:
            # latched: the device clearing never closes the case
            conn.execute(
                "UPDATE alarms SET cleared_at = COALESCE(cleared_at, ?) WHERE id = ?",
                (now, alarm_id),
            )
            _log(
                conn,
                alarm_id,
                "device_cleared",
                f"{clear.reason}; latched: an operator closes it",
                now,
            )
            return _Touched(alarm_id, False, "noted")
        if row["state"] == AlarmState.ACTIVE:
            conn.execute(
                "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?, resolved_by = ?,"
                f" outcome = ?, note = ?, cleared_at = ?, {END_PLAN} WHERE id = ?",
                (
                    AlarmState.RESOLVED.value,
                    now,
                    SYSTEM,
                    Outcome.CLEARED.value,
                    clear.reason,
                    now,
                    alarm_id,
                ),
            )
            self._open.pop(key, None)
            _log(conn, alarm_id, "cleared", clear.reason, now)
            return _Touched(alarm_id, False, "cleared")
        # accepted: the operator working on it closes it
        conn.execute(
            "UPDATE alarms SET cleared_at = COALESCE(cleared_at, ?) WHERE id = ?",
            (now, alarm_id),
        )
        _log(
            conn,
            alarm_id,
            "device_cleared",
            f"{clear.reason}; accepted: the operator closes it",
            now,
        )
        return _Touched(alarm_id, False, "noted")

    def _note_inhibited(self, conn: Conn, source: Key, muted: AlarmDraft) -> None:
        known = self._lookup(conn, make_open_key(*source, Mode.LIVE, None))
        if known is not None:
            _log(
                conn,
                known.id,
                "inhibited",
                f"{muted.rule} of {muted.gateway}/{muted.device} muted while this is open",
                self.now,
            )

    # ---- reading back ------------------------------------------------------------------------

    def _read_back(
        self, conn: Conn, results: Sequence[list[_Touched] | Exception | None]
    ) -> dict[int, Alarm]:
        """Every alarm touched, read once, after all of this unit's changes."""
        ids = sorted({t.alarm_id for r in results if isinstance(r, list) for t in r})
        alarms: dict[int, Alarm] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT * FROM alarms WHERE id IN ({marks})", chunk):
                alarms[row["id"]] = Alarm.from_row(row)
        return alarms


def _raised(touched: list[_Touched], alarms: dict[int, Alarm]) -> list[Raised]:
    return [
        Raised.model_construct(alarm=alarms[t.alarm_id], new=t.new, change=t.change)
        for t in touched
    ]


def _log(conn: Conn, alarm_id: int, action: str, detail: str, at: float) -> None:
    log(conn, alarm_id, SYSTEM, action, detail, at)
