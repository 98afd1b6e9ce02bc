"""The demo's duty desk: a roster for the week (every day, both shifts), a grid worker's
account on it, and the daily check-in of 1栋101's resident, who lives alone — so the duty page
and the grid worker's phone page have something to show. Only into a database whose roster is
still empty (a demo started again on its work folder keeps what was edited)."""

from __future__ import annotations

from cloud.duty.desk import DutyDesk
from cloud.duty.roster import DutyRole
from cloud.duty.shifts import DAY_KEYS, SHIFTS

#: (role, scope, name, phone, account)
STAFF = (
    (DutyRole.DUTY_OFFICER, "jd-jinjiang", "王值班", "138 0000 0010", "duty"),
    (DutyRole.ON_CALL_LEADER, "jd-jinjiang", "赵值班长", "138 0000 0009", "leader"),
    (DutyRole.GRID_WORKER, "wg-01", "李网格", "138 0000 0001", "grid"),
    (DutyRole.GRID_WORKER, "wg-02", "张网格", "138 0000 0002", None),
)
CHECKIN_HOME, CHECKIN_BY = "h-01-0101", "10:00"


async def seed(desk: DutyDesk) -> bool:
    """Fill an empty roster; whether it did."""
    if await desk.roster.people():
        return False
    for role, scope, name, phone, account in STAFF:
        person = await desk.roster.add_person(name, phone, "demo", account)
        for day in DAY_KEYS:
            for shift in SHIFTS:
                await desk.roster.set_weekly(day, shift.code, role, scope, person.id, "demo")
    await desk.checkins.enrol(CHECKIN_HOME, CHECKIN_BY, "demo")
    return True
