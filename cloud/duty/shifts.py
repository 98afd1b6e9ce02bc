"""Shifts (班次) of the duty roster, in Beijing time: which shift a moment falls in, and when a
shift begins and ends. Pure.

A shift belongs to the date it begins on: the night shift of 2 December runs from 20:00 on the
2nd to 08:00 on the 3rd, so 03:00 on the 3rd is still the 2nd's night shift (its people, and
the 2nd's holiday status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from cloud.ledger.filters import BEIJING
from cloud.times import from_epoch

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The day key of a holiday's roster (a holiday's pattern; the weekday's where it has none).
HOLIDAY = "holiday"
DAY_KEYS = (*WEEKDAYS, HOLIDAY)


@dataclass(frozen=True, slots=True)
class Shift:
    code: str
    zh: str
    en: str
    starts: time  # local (Beijing) time of day
    hours: int


#: The street's shifts: 白班 08:00–20:00, 夜班 20:00–08:00 the next morning.
SHIFTS = (
    Shift("day", "白班", "day shift", time(8), 12),
    Shift("night", "夜班", "night shift", time(20), 12),
)


@dataclass(frozen=True, slots=True)
class ShiftRef:
    """One shift on one date (the date it begins on)."""

    day: date
    shift: Shift

    @property
    def begins(self) -> datetime:
        return datetime.combine(self.day, self.shift.starts, BEIJING)

    @property
    def ends(self) -> datetime:
        return self.begins + timedelta(hours=self.shift.hours)

    @property
    def weekday(self) -> str:
        return WEEKDAYS[self.day.weekday()]

    def label(self) -> str:
        return f"{self.day.isoformat()} {self.shift.zh}"


def by_code(code: str, shifts: tuple[Shift, ...] = SHIFTS) -> Shift:
    for shift in shifts:
        if shift.code == code:
            return shift
    raise KeyError(code)


def shift_at(ts: float, shifts: tuple[Shift, ...] = SHIFTS) -> ShiftRef:
    """The shift the moment `ts` (epoch seconds) falls in."""
    local = from_epoch(ts).astimezone(BEIJING)
    for back in (0, 1):  # a shift that began today, else one that began yesterday and runs on
        day = local.date() - timedelta(days=back)
        for shift in shifts:
            ref = ShiftRef(day, shift)
            if ref.begins <= local < ref.ends:
                return ref
    raise ValueError(f"no shift covers {local.isoformat()}: the shifts leave a gap")


def shifts_of(day: date, shifts: tuple[Shift, ...] = SHIFTS) -> list[ShiftRef]:
    return [ShiftRef(day, shift) for shift in shifts]
