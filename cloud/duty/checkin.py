"""The daily check-in (平安报) of residents who live alone.

A home is enrolled with the local (Beijing) time its check-in is due by, e.g. 10:00; it must
have a call button. The check-in is the resident pressing the call button — the long press
("hold until the light flashes three times", reported as `call`/`test`, never an emergency)
is the gesture taught for it, and any other press of the button that day counts too (a call
for help also shows the resident up and about). Readings that sensors send on their own
(air, gas) are no sign of life and do not count.

`sweep()` (every `SWEEP_S` while the cloud runs; tests call it on their own clock):
- a home with a press of its button since local midnight has checked in today (kept in
  `checkin_days`); if today's visit task is still open, it is cleared (resolved as cleared
  when nobody has accepted it yet; if the grid worker has it, it is noted on the case);
- a home past its time with no check-in gets ONE visit task a day: a level-III alarm
  `checkin_missed` on its call button, routed by the rules file's policy for that rule (the
  grid worker on the roster, not a duty-room emergency). The day's row records it, so a
  task closed by hand is not raised again that day; the alarm book's one-open-alarm-per-device
  -and-rule makes a repeat (after a crash between the two writes) a repeat, never a second task.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.alarms.book import AlarmBook
from cloud.alarms.model import Raised
from cloud.db.database import Conn, Database, Row
from cloud.devices.expectations import model_facts
from cloud.errors import DatabaseUnavailable, NotFound, Refused
from cloud.ledger.filters import BEIJING
from cloud.rules import AlarmDraft, Clear
from cloud.rules.supervision_rules import CHECKIN_MISSED
from cloud.site.registry import Registry
from cloud.times import from_epoch

log = logging.getLogger(__name__)

SWEEP_S = 30.0
LEVEL = 3
TITLE_ZH = "平安报未报到（请网格员上门探访）"
TITLE_EN = "Daily check-in missed (grid worker to visit)"
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class CheckInDay(BaseModel):
    """One enrolled home today."""

    home_id: str
    home: str
    building: str
    due_by: str
    day: date
    state: str  # checked_in, waiting (not yet due), missed
    checked_in_at: datetime | None
    alarm_id: int | None


class CheckIns:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        book: AlarmBook,
        audit: Audit,
        announce: Callable[[list[Raised]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.book = book
        self.audit = audit
        #: the board and escalation are told of what a sweep raised or cleared (the cloud's
        #: announcer; None in tests that read the book)
        self.announce = announce

    # ---- enrolment ------------------------------------------------------------------------

    def _button(self, home_id: str) -> tuple[str, str] | None:
        """(gateway, device) of the home's call button."""
        facts = model_facts(set(self.registry.devices().values()))
        for (gateway, device), model in sorted(self.registry.devices().items()):
            info = self.registry.device(gateway, device)
            if info and info.place.home_id == home_id and facts[model].kind == "call":
                return gateway, device
        return None

    async def enrol(self, home_id: str, due_by: str, actor: str) -> None:
        if self.registry.home(home_id) is None:
            raise NotFound.said(f"没有住户 {home_id}", f"no home {home_id}")
        if not _HHMM.match(due_by):
            raise Refused.said(
                f"报到时间 {due_by} 无效（应为 时:分，如 10:00）",
                f"check-in time {due_by!r} is not HH:MM (e.g. 10:00)",
            )
        if self._button(home_id) is None:
            raise Refused.said(
                f"{home_id} 没有一键呼叫按钮，无法平安报",
                f"{home_id} has no call button to check in with",
            )
        now = self.db.clock()

        def put(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO checkin_homes (home_id, due_by, enrolled_at, enrolled_by)"
                " VALUES (?,?,?,?) ON CONFLICT (home_id) DO UPDATE SET due_by = excluded.due_by",
                (home_id, due_by, now, actor),
            )
            self.audit.add(conn, actor, "checkin_enrol", f"{home_id} by {due_by}", now)

        await self.db.write(put)

    async def leave(self, home_id: str, actor: str) -> None:
        now = self.db.clock()

        def drop(conn: Conn) -> None:
            gone = conn.execute("DELETE FROM checkin_homes WHERE home_id = ?", (home_id,))
            if gone.rowcount == 0:
                raise NotFound.said(f"{home_id} 未登记平安报", f"{home_id} is not enrolled")
            self.audit.add(conn, actor, "checkin_leave", home_id, now)

        await self.db.write(drop)

    # ---- the sweep ------------------------------------------------------------------------

    async def sweep(self) -> list[Raised]:
        """Record today's check-ins, clear what they answer, raise what is missed."""
        now = self.db.clock()
        today = from_epoch(now).astimezone(BEIJING).date()
        midnight = datetime.combine(today, time(0), BEIJING).timestamp()
        homes = await self.db.fetch_all("SELECT home_id, due_by FROM checkin_homes")
        buttons = {h["home_id"]: self._button(h["home_id"]) for h in homes}

        def look(conn: Conn) -> dict[str, tuple[float | None, Row | None]]:
            return {
                home: _today(conn, *button, home, today, midnight)
                for home, button in buttons.items()
                if button is not None  # its button was removed since: nothing to check
            }

        found = await self.db.read(look)
        decisions: list[AlarmDraft | Clear] = []
        checked_in: list[tuple[str, float]] = []
        missed: dict[tuple[str, str], str] = {}
        for home in homes:
            home_id = home["home_id"]
            button = buttons[home_id]
            if button is None:
                continue
            gateway, device = button
            seen, day = found[home_id]
            if seen is not None:
                if day is None or day["checked_in_at"] is None:
                    checked_in.append((home_id, seen))
                    if day is not None and day["alarm_id"] is not None:
                        at = from_epoch(seen)
                        reason = f"checked in at {at.astimezone(BEIJING):%H:%M}"
                        decisions.append(Clear(CHECKIN_MISSED, gateway, device, at, reason))
                continue
            hour, minute = (int(p) for p in home["due_by"].split(":"))
            due = datetime.combine(today, time(hour, minute), BEIJING).timestamp()
            if now >= due and (day is None or day["missed_at"] is None):
                decisions.append(
                    AlarmDraft(
                        CHECKIN_MISSED,
                        LEVEL,
                        "call",
                        gateway,
                        device,
                        TITLE_ZH,
                        TITLE_EN,
                        datetime.fromtimestamp(due, UTC),
                    )
                )
                missed[button] = home_id
        raised = await self.book.apply(decisions, now) if decisions else []
        tasks = {
            missed[(r.alarm.gateway, r.alarm.device)]: r.alarm.id
            for r in raised
            if (r.alarm.gateway, r.alarm.device) in missed and r.alarm.rule == CHECKIN_MISSED
        }

        def keep(conn: Conn) -> None:
            for home_id, at in checked_in:
                _checked_in(conn, home_id, today, at)
            for home_id in missed.values():
                _missed(conn, home_id, today, now, tasks.get(home_id))

        if checked_in or missed:
            await self.db.write(keep)
        return raised

    async def today(self) -> list[CheckInDay]:
        now = self.db.clock()
        today = from_epoch(now).astimezone(BEIJING).date()
        rows = await self.db.fetch_all(
            "SELECT h.home_id, h.due_by, d.checked_in_at, d.missed_at, d.alarm_id"
            " FROM checkin_homes h LEFT JOIN checkin_days d"
            " ON d.home_id = h.home_id AND d.on_day = ? ORDER BY h.home_id",
            (today.isoformat(),),
        )
        names = _home_names(self.registry)
        out = []
        for r in rows:
            building, home = names.get(r["home_id"], ("", r["home_id"]))
            state = (
                "checked_in"
                if r["checked_in_at"] is not None
                else "missed"
                if r["missed_at"] is not None
                else "waiting"
            )
            out.append(
                CheckInDay(
                    home_id=r["home_id"],
                    home=home,
                    building=building,
                    due_by=r["due_by"],
                    day=today,
                    state=state,
                    checked_in_at=from_epoch(r["checked_in_at"]),
                    alarm_id=r["alarm_id"],
                )
            )
        return out

    async def run(self, every_s: float = SWEEP_S) -> None:
        """Sweep until cancelled."""
        while True:
            try:
                raised = await self.sweep()
                if raised and self.announce is not None:
                    await self.announce(raised)
            except DatabaseUnavailable as exc:  # nothing raised: the next sweep tries again
                log.warning("check-in sweep waits for the database: %s", exc)
            except Exception:
                log.exception("check-in sweep")
            await asyncio.sleep(every_s)


def _home_names(registry: Registry) -> dict[str, tuple[str, str]]:
    """home id → (building name, home name)."""
    return {
        home.id: (building.name, home.name)
        for community in registry.site.communities
        for grid in community.grids
        for building in grid.buildings
        for home in building.homes
    }


def _today(
    conn: Conn, gateway: str, device: str, home_id: str, today: date, midnight: float
) -> tuple[float | None, Row | None]:
    seen = conn.execute(
        "SELECT min(received_at) FROM events WHERE gateway = ? AND device = ? AND kind = 'call'"
        " AND received_at >= ?",
        (gateway, device, midnight),
    ).fetchone()[0]
    day = conn.execute(
        "SELECT checked_in_at, missed_at, alarm_id FROM checkin_days"
        " WHERE home_id = ? AND on_day = ?",
        (home_id, today.isoformat()),
    ).fetchone()
    return seen, day


def _checked_in(conn: Conn, home_id: str, today: date, at: float) -> None:
    conn.execute(
        "INSERT INTO checkin_days (home_id, on_day, checked_in_at) VALUES (?,?,?)"
        " ON CONFLICT (home_id, on_day) DO UPDATE SET checked_in_at = excluded.checked_in_at",
        (home_id, today.isoformat(), at),
    )


def _missed(conn: Conn, home_id: str, today: date, now: float, alarm_id: int | None) -> None:
    conn.execute(
        "INSERT INTO checkin_days (home_id, on_day, missed_at, alarm_id) VALUES (?,?,?,?)"
        " ON CONFLICT (home_id, on_day) DO UPDATE SET missed_at = excluded.missed_at,"
        " alarm_id = excluded.alarm_id",
        (home_id, today.isoformat(), now, alarm_id),
    )
