"""Alarms for the duty room: the live stream, the list, one case, and the operator's actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from cloud.alarms import Alarm, AlarmError, LogEntry, Outcome
from cloud.ingest import alarm_message
from cloud.users import DUTY_ROLES
from cloud.web.deps import CloudDep, DutyUser
from contract.models import Command, utc_now

router = APIRouter(prefix="/api/alarms", tags=["alarms"])

KEEPALIVE_S = 15.0
#: A stream ends after this long; the page reconnects at once (its session cookie is checked
#: again) and starts from a fresh snapshot, so nothing is missed.
STREAM_MAX_S = 300.0


class AlarmCase(BaseModel):
    alarm: Alarm
    history: list[LogEntry]


class Resolution(BaseModel):
    outcome: Outcome
    note: str = Field("", max_length=1000)


@router.get("", response_model=list[Alarm])
async def active_alarms(cloud: CloudDep, user: DutyUser) -> list[Alarm]:
    """Unresolved alarms, most severe first, then unaccepted, then oldest."""
    return await cloud.book.active()


@router.get("/stream", response_class=EventSourceResponse)
async def stream(cloud: CloudDep, user: DutyUser) -> AsyncIterator[ServerSentEvent]:
    """Live updates. The first message is a snapshot of all unresolved alarms, so a page that
    reconnects (network blip, server restart) is whole again at once."""
    sub = cloud.hub.subscribe()
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_MAX_S
    try:
        snapshot = await cloud.book.active()
        yield ServerSentEvent(
            event="snapshot", data=[a.model_dump(mode="json") for a in snapshot], retry=2000
        )
        while not sub.overflowed and loop.time() < ends:
            try:
                message = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                # the account may have been removed or changed role since the stream opened
                now = await cloud.users.get(user.name)
                if now is None or now.role not in DUTY_ROLES:
                    return
                yield ServerSentEvent(comment="keepalive")
                continue
            yield ServerSentEvent(event=message["type"], data=message)
    finally:
        cloud.hub.unsubscribe(sub)


def _not_found_or_conflict(exc: AlarmError) -> HTTPException:
    text = str(exc)
    code = status.HTTP_404_NOT_FOUND if text.startswith("no alarm") else status.HTTP_409_CONFLICT
    return HTTPException(code, text)


@router.get("/{alarm_id}", response_model=AlarmCase)
async def one_alarm(alarm_id: int, cloud: CloudDep, user: DutyUser) -> AlarmCase:
    try:
        alarm = await cloud.book.get(alarm_id)
    except AlarmError as exc:
        raise _not_found_or_conflict(exc) from None
    return AlarmCase(alarm=alarm, history=await cloud.book.history(alarm_id))


@router.post("/{alarm_id}/shown", response_model=Alarm)
async def shown(alarm_id: int, cloud: CloudDep, user: DutyUser) -> Alarm:
    """The page reports that it drew this alarm: the 'shown to an operator' time."""
    try:
        return await cloud.book.mark_shown(alarm_id, user.name)
    except AlarmError as exc:
        raise _not_found_or_conflict(exc) from None


@router.post("/{alarm_id}/accept", response_model=Alarm)
async def accept(alarm_id: int, cloud: CloudDep, user: DutyUser) -> Alarm:
    try:
        alarm = await cloud.book.accept(alarm_id, user.name)
    except AlarmError as exc:
        raise _not_found_or_conflict(exc) from None
    cloud.hub.publish(alarm_message(alarm))
    if alarm.kind == "call":
        # light "help is coming" at the resident's button
        command = Command(
            id=f"acc-{alarm.id}-{utc_now():%H%M%S%f}", ts=utc_now(), device=alarm.device
        )
        sent = await cloud.ingest.send_command(alarm.gateway, "call_accepted", command)
        await cloud.book.note(
            alarm.id,
            user.name,
            "command",
            f"call_accepted to {alarm.gateway}/{alarm.device}: {'sent' if sent else 'NOT sent'}",
        )
    return alarm


@router.post("/{alarm_id}/resolve", response_model=Alarm)
async def resolve(alarm_id: int, resolution: Resolution, cloud: CloudDep, user: DutyUser) -> Alarm:
    try:
        alarm = await cloud.book.resolve(alarm_id, user.name, resolution.outcome, resolution.note)
    except AlarmError as exc:
        raise _not_found_or_conflict(exc) from None
    cloud.hub.publish(alarm_message(alarm))
    return alarm
