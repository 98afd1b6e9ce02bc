"""The duty roster (排班): who is on duty in the duty room (值班员), who is the on-call leader
(带班领导), and which grid worker (网格员) covers which grid, per shift.

Three layers, the later winning for one slot (role, scope, date, shift):
1. the weekly pattern (`roster_weekly`): a person per weekday, shift, role and scope;
2. holidays (`roster_holidays`): on a holiday the pattern of day `holiday` applies where it
   names someone (else the weekday's);
3. changes for one date (`roster_changes`): a swap (换班: two people trade two slots) or a
   cover (代班: someone takes a slot), each recorded with whom it replaced, why and by whom.

The scope of the duty officer and the on-call leader is the street; of a grid worker, the grid.
Escalation resolves roles when a step fires (`on_shift`, in the step's own transaction), so
"tonight's on-call leader" is whoever is on the roster at that moment. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.db.database import Conn, Database, Row
from cloud.duty.shifts import DAY_KEYS, HOLIDAY, SHIFTS, Shift, ShiftRef, by_code, shift_at
from cloud.errors import NotFound, Refused
from cloud.site.registry import Registry


class DutyRole(StrEnum):
    DUTY_OFFICER = "duty_officer"  # 值班员: the duty room's operator on shift (scope: street)
    ON_CALL_LEADER = "on_call_leader"  # 带班领导 (scope: street)
    GRID_WORKER = "grid_worker"  # 网格员 (scope: grid)


class Person(BaseModel):
    id: int
    name: str
    phone: str
    account: str | None = None  # their web app account (a grid worker's phone page)


class Slot(BaseModel):
    """A role and its scope, with a label for the page."""

    role: DutyRole
    scope: str
    zh: str
    en: str


class Assignment(BaseModel):
    role: DutyRole
    scope: str
    person: Person
    #: weekly, holiday (the holiday pattern), swap or cover
    source: str
    replaces: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OnShift:
    """Who holds each slot during one shift."""

    ref: ShiftRef
    holiday: str | None
    assignments: dict[tuple[str, str], Assignment]

    def who(self, role: str, scope: str) -> Assignment | None:
        return self.assignments.get((role, scope))


class ShiftView(BaseModel):
    """One shift of the roster as the page shows it."""

    day: date
    shift: str
    zh: str
    en: str
    begins: str
    ends: str
    holiday: str | None
    assignments: list[Assignment]


def _view(on: OnShift) -> ShiftView:
    return ShiftView(
        day=on.ref.day,
        shift=on.ref.shift.code,
        zh=on.ref.shift.zh,
        en=on.ref.shift.en,
        begins=on.ref.begins.isoformat(),
        ends=on.ref.ends.isoformat(),
        holiday=on.holiday,
        assignments=sorted(on.assignments.values(), key=lambda a: (a.role, a.scope)),
    )


_PEOPLE = "SELECT id, name, phone, account FROM roster_people"


def _person(row: Row) -> Person:
    return Person(id=row["id"], name=row["name"], phone=row["phone"], account=row["account"])


class Roster:
    def __init__(
        self, db: Database, registry: Registry, audit: Audit, shifts: tuple[Shift, ...] = SHIFTS
    ) -> None:
        self.db = db
        self.registry = registry
        self.audit = audit
        self.shifts = shifts

    # ---- resolving, on the database thread -----------------------------------------------

    def on_shift(self, conn: Conn, at: float) -> OnShift:
        """Who is on duty at the moment `at` (in the caller's unit of work)."""
        return self.of_shift(conn, shift_at(at, self.shifts))

    def of_shift(self, conn: Conn, ref: ShiftRef) -> OnShift:
        day = ref.day.isoformat()
        row = conn.execute("SELECT name FROM roster_holidays WHERE on_day = ?", (day,)).fetchone()
        holiday = row["name"] if row else None
        keys = [ref.weekday, HOLIDAY] if holiday else [ref.weekday]
        found: dict[tuple[str, str], Assignment] = {}
        for key in keys:  # the holiday pattern over the weekday's
            for r in conn.execute(
                "SELECT w.role, w.scope, p.id, p.name, p.phone, p.account FROM roster_weekly w"
                " JOIN roster_people p ON p.id = w.person_id"
                " WHERE w.day_key = ? AND w.shift = ?",
                (key, ref.shift.code),
            ).fetchall():
                found[(r["role"], r["scope"])] = Assignment(
                    role=r["role"],
                    scope=r["scope"],
                    person=_person(r),
                    source="holiday" if key == HOLIDAY else "weekly",
                )
        for r in conn.execute(
            "SELECT c.role, c.scope, c.kind, c.reason, p.id, p.name, p.phone, p.account,"
            " o.name AS replaced FROM roster_changes c"
            " JOIN roster_people p ON p.id = c.person_id"
            " LEFT JOIN roster_people o ON o.id = c.replaces_id"
            " WHERE c.on_day = ? AND c.shift = ?",
            (day, ref.shift.code),
        ).fetchall():
            found[(r["role"], r["scope"])] = Assignment(
                role=r["role"],
                scope=r["scope"],
                person=_person(r),
                source=r["kind"],
                replaces=r["replaced"],
                reason=r["reason"],
            )
        return OnShift(ref, holiday, found)

    # ---- reading --------------------------------------------------------------------------

    def slots(self) -> list[Slot]:
        """Every role and scope the roster can fill, from the site registry."""
        street = self.registry.site.street
        out = [
            Slot(role=DutyRole.DUTY_OFFICER, scope=street.id, zh="值班员", en="Duty officer"),
            Slot(role=DutyRole.ON_CALL_LEADER, scope=street.id, zh="带班领导", en="On-call leader"),
        ]
        for community in self.registry.site.communities:
            for grid in community.grids:
                out.append(
                    Slot(
                        role=DutyRole.GRID_WORKER,
                        scope=grid.id,
                        zh=f"网格员 · {grid.name}",
                        en=f"Grid worker · {grid.name}",
                    )
                )
        return out

    async def now(self) -> ShiftView:
        at = self.db.clock()
        return _view(await self.db.read(lambda c: self.on_shift(c, at)))

    async def days(self, start: date, count: int) -> list[ShiftView]:
        """Every shift of `count` days from `start`, as resolved now."""
        refs = [
            ShiftRef(date.fromordinal(start.toordinal() + n), shift)
            for n in range(count)
            for shift in self.shifts
        ]
        return await self.db.read(lambda c: [_view(self.of_shift(c, ref)) for ref in refs])

    def grids_of(self, conn: Conn, account: str, at: float) -> list[str]:
        """The grids whose grid worker on shift at `at` is the person with this account."""
        on = self.on_shift(conn, at)
        return sorted(
            a.scope
            for a in on.assignments.values()
            if a.role == DutyRole.GRID_WORKER and a.person.account == account
        )

    async def people(self) -> list[Person]:
        rows = await self.db.fetch_all(f"{_PEOPLE} WHERE active = 1 ORDER BY id")
        return [_person(r) for r in rows]

    async def weekly(self) -> list[dict[str, object]]:
        rows = await self.db.fetch_all(
            "SELECT day_key, shift, role, scope, person_id FROM roster_weekly"
            " ORDER BY day_key, shift, role, scope"
        )
        return [dict(zip(r.keys(), r, strict=True)) for r in rows]

    async def holidays(self) -> list[dict[str, str]]:
        rows = await self.db.fetch_all("SELECT on_day, name FROM roster_holidays ORDER BY on_day")
        return [{"day": r["on_day"], "name": r["name"]} for r in rows]

    # ---- changing -------------------------------------------------------------------------

    async def add_person(
        self, name: str, phone: str, actor: str, account: str | None = None
    ) -> Person:
        """A person who can be put on the roster; `account`: their web app account, which
        sees the cases of the grids they cover on the grid worker's page."""
        now = self.db.clock()

        def add(conn: Conn) -> Person:
            row = conn.execute(
                "INSERT INTO roster_people (name, phone, account, created_at, created_by)"
                " VALUES (?,?,?,?,?) RETURNING id",
                (name, phone, account, now, actor),
            ).fetchone()
            detail = f"{row['id']}: {name} {phone}" + (f" (account {account})" if account else "")
            self.audit.add(conn, actor, "roster_person", detail, now)
            return Person(id=row["id"], name=name, phone=phone, account=account)

        return await self.db.write(add)

    async def set_weekly(
        self, day_key: str, shift: str, role: str, scope: str, person_id: int | None, actor: str
    ) -> None:
        """Put `person_id` on a slot of the weekly pattern (None: nobody)."""
        if day_key not in DAY_KEYS:
            raise Refused.said(
                f"未知的日期类型 {day_key}（应为 mon…sun 或 holiday）",
                f"unknown day {day_key!r} (mon…sun or holiday)",
            )
        self._check_slot(shift, role, scope)
        now = self.db.clock()

        def put(conn: Conn) -> None:
            if person_id is None:
                conn.execute(
                    "DELETE FROM roster_weekly WHERE day_key = ? AND shift = ? AND role = ?"
                    " AND scope = ?",
                    (day_key, shift, role, scope),
                )
            else:
                self._known_person(conn, person_id)
                conn.execute(
                    "INSERT INTO roster_weekly (day_key, shift, role, scope, person_id,"
                    " updated_at, updated_by) VALUES (?,?,?,?,?,?,?)"
                    " ON CONFLICT (day_key, shift, role, scope) DO UPDATE SET"
                    " person_id = excluded.person_id, updated_at = excluded.updated_at,"
                    " updated_by = excluded.updated_by",
                    (day_key, shift, role, scope, person_id, now, actor),
                )
            self.audit.add(
                conn,
                actor,
                "roster_weekly",
                f"{day_key} {shift} {role}/{scope}: {person_id or 'nobody'}",
                now,
            )

        await self.db.write(put)

    async def set_holiday(self, day: date, name: str | None, actor: str) -> None:
        """Mark `day` a holiday called `name` (None: an ordinary day again)."""
        now = self.db.clock()

        def put(conn: Conn) -> None:
            conn.execute("DELETE FROM roster_holidays WHERE on_day = ?", (day.isoformat(),))
            if name is not None:
                conn.execute(
                    "INSERT INTO roster_holidays (on_day, name, created_at, created_by)"
                    " VALUES (?,?,?,?)",
                    (day.isoformat(), name, now, actor),
                )
            self.audit.add(conn, actor, "roster_holiday", f"{day}: {name or 'not a holiday'}", now)

        await self.db.write(put)

    async def cover(
        self,
        role: str,
        scope: str,
        day: date,
        shift: str,
        person_id: int,
        reason: str,
        actor: str,
    ) -> Assignment:
        """代班: `person_id` takes one slot, whoever held it."""
        self._check_slot(shift, role, scope)
        ref = ShiftRef(day, by_code(shift, self.shifts))
        now = self.db.clock()

        def put(conn: Conn) -> Assignment:
            self._known_person(conn, person_id)
            held = self.of_shift(conn, ref).who(role, scope)
            self._change(conn, ref, role, scope, person_id, held, "cover", reason, actor, now)
            found = self.of_shift(conn, ref).who(role, scope)
            assert found is not None
            return found

        return await self.db.write(put)

    async def swap(
        self,
        role: str,
        scope: str,
        first: tuple[date, str],
        second: tuple[date, str],
        reason: str,
        actor: str,
    ) -> tuple[Assignment, Assignment]:
        """换班: the people on two slots of one role and scope trade them."""
        for _, shift in (first, second):
            self._check_slot(shift, role, scope)
        refs = [ShiftRef(day, by_code(shift, self.shifts)) for day, shift in (first, second)]
        if refs[0] == refs[1]:
            raise Refused.said("换班需要两个不同的班次", "a swap needs two different shifts")
        now = self.db.clock()

        def put(conn: Conn) -> tuple[Assignment, Assignment]:
            held = [self.of_shift(conn, ref).who(role, scope) for ref in refs]
            for ref, who in zip(refs, held, strict=True):
                if who is None:
                    raise Refused.said(
                        f"{ref.label()} 无人值班，无法换班",
                        f"nobody is on the roster for {ref.label()}: nothing to swap",
                    )
            a, b = held[0], held[1]
            assert a is not None and b is not None
            if a.person.id == b.person.id:
                raise Refused.said(
                    f"两个班次都是 {a.person.name}，无需换班",
                    f"{a.person.name} holds both shifts: nothing to swap",
                )
            self._change(conn, refs[0], role, scope, b.person.id, a, "swap", reason, actor, now)
            self._change(conn, refs[1], role, scope, a.person.id, b, "swap", reason, actor, now)
            x, y = (self.of_shift(conn, ref).who(role, scope) for ref in refs)
            assert x is not None and y is not None
            return x, y

        return await self.db.write(put)

    def _change(
        self,
        conn: Conn,
        ref: ShiftRef,
        role: str,
        scope: str,
        person_id: int,
        held: Assignment | None,
        kind: str,
        reason: str,
        actor: str,
        now: float,
    ) -> None:
        # one change per slot: a later one replaces it; `replaces_id` keeps who held the slot
        # just before (the weekly pattern's person, or the one an earlier change put there)
        conn.execute(
            "INSERT INTO roster_changes (on_day, shift, role, scope, person_id, replaces_id,"
            " kind, reason, created_at, created_by) VALUES (?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (on_day, shift, role, scope) DO UPDATE SET"
            " person_id = excluded.person_id, replaces_id = excluded.replaces_id,"
            " kind = excluded.kind, reason = excluded.reason,"
            " created_at = excluded.created_at, created_by = excluded.created_by",
            (
                ref.day.isoformat(),
                ref.shift.code,
                role,
                scope,
                person_id,
                held.person.id if held else None,
                kind,
                reason,
                now,
                actor,
            ),
        )
        before = held.person.name if held else "nobody"
        self.audit.add(
            conn,
            actor,
            f"roster_{kind}",
            f"{ref.label()} {role}/{scope}: {before} → person {person_id}; {reason}",
            now,
        )

    def _check_slot(self, shift: str, role: str, scope: str) -> None:
        if shift not in {s.code for s in self.shifts}:
            raise Refused.said(f"未知的班次 {shift}", f"unknown shift {shift!r}")
        if not any(s.role == role and s.scope == scope for s in self.slots()):
            raise Refused.said(
                f"未知的岗位 {role}/{scope}", f"no such role and scope: {role}/{scope}"
            )

    def _known_person(self, conn: Conn, person_id: int) -> None:
        row = conn.execute(f"{_PEOPLE} WHERE id = ? AND active = 1", (person_id,)).fetchone()
        if row is None:
            raise NotFound.said(
                f"名册中没有人员 {person_id}", f"no person {person_id} on the roster"
            )
