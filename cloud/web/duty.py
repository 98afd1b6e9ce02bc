"""The duty desk's API: the roster (排班; the duty room reads it, supervisors and admins edit
it), shift handovers (交接班; the duty room's operators make and acknowledge them) and the
daily check-ins (平安报; the duty room reads today's, supervisors and admins enrol homes).
Every change is audited by the services (cloud/duty/)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from cloud.duty.checkin import CheckInDay
from cloud.duty.handover import Handover, Summary
from cloud.duty.roster import Assignment, DutyRole, Person, ShiftView, Slot
from cloud.web.alarms import TypedText
from cloud.web.deps import DutyDeskDep, DutyUser, ResidentEditorUser, RosterEditorUser, RowId
from contract.site import Phone, Slug

router = APIRouter(prefix="/api", tags=["duty"])

ShiftCode = Field(pattern=r"^[a-z]{1,16}$")
#: A name a person types: 1–100 characters, no control characters.
Name = Annotated[TypedText, Field(min_length=1, max_length=100)]


class RosterPage(BaseModel):
    slots: list[Slot]
    people: list[Person]
    shifts: list[ShiftView]
    holidays: list[dict[str, str]]
    weekly: list[dict[str, object]]


class NewPerson(BaseModel):
    name: Name
    phone: Phone
    account: TypedText | None = Field(
        None, min_length=1, max_length=64, description="Their account (a grid worker's page)"
    )


class WeeklySlot(BaseModel):
    day: str = Field(description="mon … sun, or holiday")
    shift: str = ShiftCode
    role: DutyRole
    scope: Slug
    person_id: int | None = Field(None, ge=1, description="None: nobody on this slot")


class HolidayName(BaseModel):
    name: Name


class Cover(BaseModel):
    role: DutyRole
    scope: Slug
    day: date
    shift: str = ShiftCode
    person_id: int = Field(ge=1)
    reason: TypedText = Field("", max_length=200)


class ShiftOf(BaseModel):
    day: date
    shift: str = ShiftCode


class Swap(BaseModel):
    role: DutyRole
    scope: Slug
    first: ShiftOf
    second: ShiftOf
    reason: TypedText = Field("", max_length=200)


class Note(BaseModel):
    note: TypedText = Field("", max_length=1000)


class Enrolment(BaseModel):
    due_by: str = Field(description="Local (Beijing) time, HH:MM", max_length=5)


@router.get("/roster/now", response_model=ShiftView)
async def on_duty_now(desk: DutyDeskDep, user: DutyUser) -> ShiftView:
    """Who is on duty now: the shift in force and every slot's person."""
    return await desk.roster.now()


@router.get("/roster", response_model=RosterPage)
async def roster(
    desk: DutyDeskDep,
    user: DutyUser,
    start: date | None = None,
    days: int = Query(7, ge=1, le=31),
) -> RosterPage:
    """The shifts of `days` days from `start` (default: today, Beijing time) as resolved now,
    with the slots, the people, the holidays and the weekly pattern."""
    first = start or (await desk.roster.now()).day
    return RosterPage(
        slots=desk.roster.slots(),
        people=await desk.roster.people(),
        shifts=await desk.roster.days(first, days),
        holidays=await desk.roster.holidays(),
        weekly=await desk.roster.weekly(),
    )


@router.post("/roster/people", response_model=Person, status_code=status.HTTP_201_CREATED)
async def add_person(body: NewPerson, desk: DutyDeskDep, user: RosterEditorUser) -> Person:
    return await desk.roster.add_person(body.name, body.phone, user.name, body.account)


@router.put("/roster/weekly", status_code=status.HTTP_204_NO_CONTENT)
async def set_weekly(body: WeeklySlot, desk: DutyDeskDep, user: RosterEditorUser) -> None:
    await desk.roster.set_weekly(
        body.day, body.shift, body.role, body.scope, body.person_id, user.name
    )


@router.put("/roster/holidays/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def set_holiday(
    day: date, body: HolidayName, desk: DutyDeskDep, user: RosterEditorUser
) -> None:
    await desk.roster.set_holiday(day, body.name, user.name)


@router.delete("/roster/holidays/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def clear_holiday(day: date, desk: DutyDeskDep, user: RosterEditorUser) -> None:
    await desk.roster.set_holiday(day, None, user.name)


@router.post("/roster/cover", response_model=Assignment)
async def cover(body: Cover, desk: DutyDeskDep, user: RosterEditorUser) -> Assignment:
    """代班: a person takes one slot of one date."""
    return await desk.roster.cover(
        body.role, body.scope, body.day, body.shift, body.person_id, body.reason, user.name
    )


@router.post("/roster/swap", response_model=list[Assignment])
async def swap(body: Swap, desk: DutyDeskDep, user: RosterEditorUser) -> list[Assignment]:
    """换班: the people of two slots trade them."""
    pair = await desk.roster.swap(
        body.role,
        body.scope,
        (body.first.day, body.first.shift),
        (body.second.day, body.second.shift),
        body.reason,
        user.name,
    )
    return list(pair)


@router.get("/handovers/draft", response_model=Summary)
async def handover_draft(desk: DutyDeskDep, user: DutyUser) -> Summary:
    """What a handover made now would say (not kept)."""
    return await desk.handovers.summary_now()


@router.get("/handovers", response_model=list[Handover])
async def handovers(
    desk: DutyDeskDep, user: DutyUser, limit: int = Query(20, ge=1, le=200)
) -> list[Handover]:
    return await desk.handovers.recent(limit)


@router.post("/handovers", response_model=Handover, status_code=status.HTTP_201_CREATED)
async def make_handover(body: Note, desk: DutyDeskDep, user: DutyUser) -> Handover:
    """The outgoing operator hands the shift over: the summary is made now and kept."""
    return await desk.handovers.make(user.name, body.note)


@router.post("/handovers/{handover_id}/acknowledge", response_model=Handover)
async def acknowledge_handover(
    handover_id: RowId, body: Note, desk: DutyDeskDep, user: DutyUser
) -> Handover:
    """The incoming operator takes the shift over (another account than the one who made it)."""
    return await desk.handovers.acknowledge(handover_id, user.name, body.note)


@router.get("/checkins", response_model=list[CheckInDay])
async def checkins_today(desk: DutyDeskDep, user: DutyUser) -> list[CheckInDay]:
    """Every enrolled home today: checked in, waiting (not yet due) or missed (its visit task)."""
    return await desk.checkins.today()


@router.put("/checkins/{home_id}", status_code=status.HTTP_204_NO_CONTENT)
async def enrol(home_id: str, body: Enrolment, desk: DutyDeskDep, user: ResidentEditorUser) -> None:
    await desk.checkins.enrol(home_id, body.due_by, user.name)


@router.delete("/checkins/{home_id}", status_code=status.HTTP_204_NO_CONTENT)
async def leave(home_id: str, desk: DutyDeskDep, user: ResidentEditorUser) -> None:
    await desk.checkins.leave(home_id, user.name)
