"""Alarms for the duty room: the live stream, the list, groups, one case with its timeline and
notifications, and the actions on a case — accept, dispatch, feedback, resolve (a false alarm
with its cause), and verify (a supervisor's, with the list of cases awaiting it). Each action is
in the alarm's log with who and when.

The resident's profile behind an alarm (name, age, conditions, emergency contacts) is for the
duty-room roles only, and every read of it is in the audit: who read whose, when, for which
alarm."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, Field, model_validator

from cloud.access.users import DUTY_ROLES
from cloud.alarms.groups import AlarmGroup
from cloud.alarms.model import Alarm, FalseAlarmCause, LogEntry, Outcome
from cloud.live import messages
from cloud.web.deps import (
    AlarmsDep,
    BrokerLinkDep,
    CasesDep,
    DutyUser,
    HubDep,
    HushDep,
    NotificationsDep,
    ResidentsDep,
    RowId,
    SupervisorUser,
    UsersDep,
    session_ref,
)
from contract import hush
from contract.site import Resident

router = APIRouter(prefix="/api/alarms", tags=["alarms"])

_MAX_ID = 2**63 - 1  # SQLite's INTEGER (as RowId)

#: The supervisor's list covers cases resolved within a week (a case left a weekend is there).
UNVERIFIED_HOURS = 7 * 24
KEEPALIVE_S = 15.0
#: A stream ends after this long; the page reconnects at once (its session cookie is checked
#: again) and starts from a fresh snapshot, so nothing is missed.
STREAM_MAX_S = 300.0


#: Control characters (other than tab, newline, carriage return) and DEL: nothing a person
#: types; a spreadsheet cannot hold them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _typed_text(text: str) -> str:
    if found := _CONTROL.search(text):
        raise ValueError(
            f"control character U+{ord(found.group()):04X} at position {found.start()}:"
            " only printable text, tabs and line breaks"
        )
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be only spaces")
    return text


#: Text an operator types (a note, feedback, whom a case went to).
TypedText = Annotated[str, AfterValidator(_typed_text)]
#: Typed text that must say something: spaces alone are refused.
SaidText = Annotated[TypedText, AfterValidator(_not_blank)]


class NotificationRecord(BaseModel):
    key: str
    step: int
    reason: str
    target: str
    name: str
    channel: str
    status: str  # pending, delivered, failed, skipped, cancelled
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    detail: str
    vendor_ref: str | None = None  # the vendor's id: BizId, SerialNo, CallId
    call_result: str | None = None  # a voice call: answered or not (the vendor's receipt)


class AlarmCase(BaseModel):
    alarm: Alarm
    history: list[LogEntry]
    notifications: list[NotificationRecord] = []


class Resolution(BaseModel):
    outcome: Outcome
    cause: FalseAlarmCause | None = Field(
        None,
        description="Required when the outcome is false_alarm (and only then): 误触 mistouch,"
        " 设备故障 device_fault, 烹饪油烟 cooking, 测试未报备 unannounced_test, 其他 other"
        " (then the note says what)",
    )
    note: TypedText = Field("", max_length=1000)

    @model_validator(mode="after")
    def _cause_with_false_alarm(self) -> Self:
        if self.outcome is Outcome.CLEARED:
            raise ValueError("cleared is the system's outcome; an operator resolves otherwise")
        if self.outcome is Outcome.FALSE_ALARM and self.cause is None:
            raise ValueError("a false alarm needs its cause (cause)")
        if self.outcome is not Outcome.FALSE_ALARM and self.cause is not None:
            raise ValueError(f"a cause is given only for a false alarm, not {self.outcome.value}")
        if self.cause is FalseAlarmCause.OTHER and not self.note.strip():
            raise ValueError("cause 'other' needs a note saying what it was")
        return self


class ResidentProfile(BaseModel):
    """Who lives in the home an alarm came from, for the responders: read only by duty
    roles, every read audited."""

    alarm_id: int
    home_id: str
    home: str
    building: str
    community: str
    residents: list[Resident]


class Dispatch(BaseModel):
    to: SaidText = Field(min_length=1, max_length=100, description="e.g. 网格员, 物业, 119, 120")
    note: TypedText = Field("", max_length=1000)


class Note(BaseModel):
    note: TypedText = Field("", max_length=1000)


class Feedback(BaseModel):
    note: SaidText = Field(min_length=1, max_length=2000)


@router.get("", response_model=list[Alarm])
async def active_alarms(
    alarms: AlarmsDep,
    user: DutyUser,
    limit: int | None = Query(None, ge=1, le=100000, description="At most this many, first"),
) -> list[Alarm]:
    """Unresolved alarms, most severe first, then unaccepted, then oldest."""
    return await alarms.active(limit)


class ShownIds(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=_MAX_ID)]] = Field(min_length=1, max_length=5000)


class ShownResult(BaseModel):
    first_shown: list[int] = Field(description="The ids whose first showing this was")


@router.post("/shown", response_model=ShownResult)
async def shown_many(body: ShownIds, cases: CasesDep, user: DutyUser) -> ShownResult:
    """The page reports that it drew these alarms (one request for a whole board): the
    'shown to an operator' time of each that had none; unknown ids are ignored."""
    return ShownResult(first_shown=await cases.mark_shown_many(body.ids, user.name))


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def stream(
    request: Request,
    user: DutyUser,
    alarms: AlarmsDep,
    hub: HubDep,
    link: BrokerLinkDep,
    users: UsersDep,
) -> StreamingResponse:
    """Live updates (server-sent events). The first is `snapshot`, every unresolved alarm, so
    a page that reconnects (network blip, server restart) is whole again at once; the second
    is `broker`, the state of the cloud's link to the MQTT broker (connected, down_since),
    sent again on every change; then `alarm`, `gateway` and `notify` as they happen. Messages
    are serialised once for every page (cloud/live/messages.py); what queued up meanwhile
    goes out in one write."""
    session = session_ref(request)
    sub = hub.subscribe()

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        ends = loop.time() + STREAM_MAX_S
        try:
            snapshot = await alarms.active()
            data = "[" + ",".join(a.model_dump_json() for a in snapshot) + "]"
            yield f"event: snapshot\ndata: {data}\nretry: 2000\n\n"
            yield messages.broker_state(link.connected.is_set(), link.down_since).frame()
            while not sub.overflowed and loop.time() < ends:
                try:
                    first = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    # since the stream opened the account may have been disabled, changed
                    # role, had its password reset or its sessions ended: then it is over
                    now = await users.session_user(session) if session else None
                    if now is None or now.role not in DUTY_ROLES:
                        return
                    yield ": keepalive\n\n"
                    continue
                frames = [first.frame()]
                while not sub.queue.empty():
                    frames.append(sub.queue.get_nowait().frame())
                yield "".join(frames)
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/groups", response_model=list[AlarmGroup])
async def groups(alarms: AlarmsDep, user: DutyUser) -> list[AlarmGroup]:
    """The open alarms grouped by building and category, most severe group first."""
    return await alarms.groups()


@router.get("/unverified", response_model=list[Alarm])
async def awaiting_verification(
    alarms: AlarmsDep,
    user: SupervisorUser,
    hours: int = Query(
        UNVERIFIED_HOURS, ge=1, le=24 * 31, description="Resolved within this many hours"
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[Alarm]:
    """Cases resolved by a person recently (a week unless told) that no supervisor has
    verified yet (督办), newest first; cases the system closed itself are not listed."""
    return await alarms.awaiting_verification(time.time() - hours * 3600, limit)


@router.get("/{alarm_id}", response_model=AlarmCase)
async def one_alarm(
    alarm_id: RowId, alarms: AlarmsDep, notifications: NotificationsDep, user: DutyUser
) -> AlarmCase:
    alarm = await alarms.get(alarm_id)
    notes = await notifications.of_alarm(alarm_id)
    return AlarmCase(
        alarm=alarm,
        history=await alarms.history(alarm_id),
        notifications=[NotificationRecord.model_validate(_times(n)) for n in notes],
    )


@router.get("/{alarm_id}/resident", response_model=ResidentProfile)
async def resident(
    alarm_id: RowId, alarms: AlarmsDep, residents: ResidentsDep, user: DutyUser
) -> ResidentProfile:
    """The residents of the alarm's home (name, age, conditions that matter to responders,
    emergency contacts), from the site registry as it is now. Duty roles only; every read is
    audited (action `resident_read`)."""
    alarm = await alarms.get(alarm_id)
    home = await residents.behind_alarm(alarm_id, alarm.home_id, alarm.building, user.name)
    return ResidentProfile(
        alarm_id=alarm_id,
        home_id=home.id,
        home=home.name,
        building=alarm.building,
        community=alarm.community,
        residents=list(home.residents),
    )


def _times(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("created_at", "delivered_at"):
        if out[key] is not None:
            out[key] = datetime.fromtimestamp(out[key], UTC)
    return out


@router.post("/{alarm_id}/shown", response_model=Alarm)
async def shown(alarm_id: RowId, cases: CasesDep, user: DutyUser) -> Alarm:
    """The page reports that it drew this alarm: the 'shown to an operator' time."""
    return await cases.mark_shown(alarm_id, user.name)


# Each action below is one change of the case (a refusal is the app's 404/409/422,
# cloud/web/errors.py); the changed alarm goes to every open board (cloud/alarms/actions.py).


@router.post("/{alarm_id}/accept", response_model=Alarm)
async def accept(alarm_id: RowId, cases: CasesDep, user: DutyUser) -> Alarm:
    return await cases.accept(alarm_id, user.name)


@router.post("/{alarm_id}/resolve", response_model=Alarm)
async def resolve(
    alarm_id: RowId, resolution: Resolution, cases: CasesDep, user: DutyUser
) -> Alarm:
    """Close the case (办结) with its outcome; a false alarm needs its cause (422 without)."""
    return await cases.resolve(
        alarm_id, user.name, resolution.outcome, resolution.note, resolution.cause
    )


@router.post("/{alarm_id}/dispatch", response_model=Alarm)
async def dispatch(alarm_id: RowId, body: Dispatch, cases: CasesDep, user: DutyUser) -> Alarm:
    """Someone is sent to an accepted case (grid worker, property company, 119/120)."""
    return await cases.dispatch(alarm_id, user.name, body.to, body.note)


@router.post("/{alarm_id}/feedback", response_model=Alarm)
async def feedback(alarm_id: RowId, body: Feedback, cases: CasesDep, user: DutyUser) -> Alarm:
    """What happened, for the resident and the record (情况反馈); may be given more than once."""
    return await cases.feedback(alarm_id, user.name, body.note)


@router.post("/{alarm_id}/verify", response_model=Alarm)
async def verify(alarm_id: RowId, body: Note, cases: CasesDep, user: SupervisorUser) -> Alarm:
    """A supervisor confirms that a resolved case is really closed (督办落实)."""
    return await cases.verify(alarm_id, user.name, body.note)


class HushRequest(BaseModel):
    duration_s: int = Field(
        hush.DEFAULT_HUSH_S,
        ge=hush.MIN_HUSH_S,
        le=hush.MAX_HUSH_S,
        description="How long the smoke alarm stays silent (it sounds again if smoke persists)",
    )


class HushAnswer(BaseModel):
    command_id: str
    alarm_id: int
    duration_s: int


@router.post("/{alarm_id}/hush", response_model=HushAnswer, status_code=202)
async def hush_alarm(
    alarm_id: RowId, body: HushRequest, hushes: HushDep, user: DutyUser
) -> HushAnswer:
    """Silence the case's smoke alarm for a while (远程消音): only once the case is accepted and
    while it is open, only for a device that can be hushed (409 otherwise, zh/en). Accepted
    here means sent: the device's answer (hushed, or refused with the reason) comes onto the
    case's log (`hush.result`)."""
    sent = await hushes.request(alarm_id, user.name, body.duration_s)
    return HushAnswer(
        command_id=sent.command_id, alarm_id=sent.alarm_id, duration_s=sent.duration_s
    )
