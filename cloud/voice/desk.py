"""The duty room's switchboard: every voice call, its state, and who may do what with it.

A call is offered for a new live call alarm whose gateway's board profile has `audio` (the
alarm was raised and pushed already; nothing here delays it): `cmd/voice` offer to the
gateway, whose Reply brings the SDP offer; every open board gets the call on the live
stream and rings. One operator answers (the first one; the others are refused, told who
did): `cmd/voice` answer with the browser's SDP answer. Either side hangs up. Every step is
on the case's timeline (offered, answered by whom, connected, ended with its length and who
hung up) and the operators' own steps in the audit.

The calls are in the database (`cloud/voice/calls_table.py`), each change one unit of work
that reads the call again under the writer's lock: the process that offered a call, the one
the gateway's answers reach and the one an operator's page talks to may be three different
cloud processes (docs/cluster.md), and two operators answering at once through two of them
still give the call to one. A restart forgets nothing; a call the gateway may have lost
meanwhile is offered again when the gateway's link comes back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from cloud.db.database import Conn, Database
from cloud.errors import Conflict, NotFound, Refused
from cloud.voice import calls_table as table
from cloud.voice.call import UNCONFIRMED, Call, CallStatus
from contract.models import Command, Reply, utc_now
from contract.voice import VOICE_COMMAND, CallState, VoiceAction

log = logging.getLogger(__name__)

#: Publish a command to a gateway (gateway, name, command); False if the broker cannot take it.
SendCommand = Callable[[str, str, Command], Awaitable[bool]]
#: A line on an alarm's timeline (alarm id, actor, action, detail).
Note = Callable[[int, str, str, str], Awaitable[None]]
#: An entry in the audit (actor, action, detail).
Record = Callable[[str, str, str], Awaitable[None]]
#: Tell every open page (the call as JSON-ready fields).
Publish = Callable[[dict[str, Any]], object]

SYSTEM = "system"
#: Calls ended this long ago are still listed (a page that reconnects sees how they ended).
KEEP_ENDED_S = 600.0
#: (action, actor, detail) lines for a call's timeline
Notes = list[tuple[str, str, str]]


class VoiceDesk:
    def __init__(
        self,
        *,
        db: Database,
        send_command: SendCommand,
        note: Note,
        record: Record,
        publish: Publish,
        has_audio: Callable[[str], bool],
    ) -> None:
        self.db = db
        self._send_command = send_command
        self._note = note
        self._record = record
        self._publish = publish
        self._has_audio = has_audio
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- what the pages read --------------------------------------------------------------

    async def calls(self) -> list[Call]:
        """Calls in progress, and those that ended in the last ten minutes, oldest first."""
        since = self.db.clock() - KEEP_ENDED_S
        return await self.db.read(lambda conn: table.listing(conn, since))

    async def get(self, call_id: str) -> Call:
        call = await self.db.read(lambda conn: table.get(conn, call_id))
        if call is None:
            raise NotFound.said("没有这个呼叫", f"no call {call_id}")
        return call

    # ---- offering ---------------------------------------------------------------------------

    def alarm_raised(self, alarm_id: int, kind: str, gateway: str, device: str) -> None:
        """A new live alarm was pushed: offer a call if it is a call at a board with audio.
        Never waits (the offer is sent by a task of its own)."""
        if kind != "call" or not self._has_audio(gateway):
            return
        self._soon(self.offer(alarm_id, gateway, device, unless_live=True))

    def gateway_state(self, gateway: str, state: str) -> None:
        """A gateway's uplink came back: a call it may not have heard of (the offer, or the
        operator's answer, lost while it was away) is offered again (a task of its own)."""
        if state == "online":
            self._soon(self._offer_again(gateway))

    def alarm_closed(self, alarm_id: int) -> None:
        """The case was resolved: its call (if any) ends, and none is offered again."""
        self._soon(self._end_for_alarm(alarm_id))

    def _soon(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, Conflict):  # e.g. resolved meanwhile: nothing to offer
                log.info("voice: %s", exc)
            else:
                log.error("voice: %r", exc, exc_info=exc)

    async def _offer_again(self, gateway: str) -> None:
        calls = await self.db.read(lambda conn: table.of_gateway(conn, gateway))
        for call in calls:
            if call.status in UNCONFIRMED:
                reason = "offered again: the gateway's link came back"
                if await self._end(call.id, SYSTEM, reason, only=UNCONFIRMED) is not None:
                    try:
                        await self.offer(
                            call.alarm_id, call.gateway, call.device, callback_by=call.callback_by
                        )
                    except Conflict as exc:  # the case was resolved meanwhile
                        log.info("voice: not offered again: %s", exc)

    async def _end_for_alarm(self, alarm_id: int) -> None:
        calls = await self.db.read(lambda conn: table.live_for_alarm(conn, alarm_id))
        for call in calls:
            await self._end(call.id, SYSTEM, "the case was resolved")

    async def callback(
        self, alarm_id: int, gateway: str, device: str, actor: str, *, resolved: bool = False
    ) -> Call:
        """An operator calls the home back from its case (回拨): the call is theirs to
        answer, and no calming prompt plays (nobody at the home is waiting for it)."""
        if resolved:
            raise Conflict.said("案件已办结，不能回拨", f"alarm {alarm_id} is resolved")
        if not self._has_audio(gateway):
            raise Refused.said(
                "该网关没有语音设备，无法回拨", f"{gateway} has no audio: no call-back"
            )
        if await self.db.read(lambda conn: table.live_for_alarm(conn, alarm_id)):
            raise Conflict.said("该案件已有语音呼叫", f"alarm {alarm_id} has a call already")
        await self._record(actor, "call.callback", f"alarm {alarm_id} {gateway}/{device}")
        await self._note(alarm_id, actor, "call_back", f"{gateway}/{device}")
        call = await self.offer(alarm_id, gateway, device, callback_by=actor)
        if call is None:  # another call for the case began meanwhile
            raise Conflict.said("该案件已有语音呼叫", f"alarm {alarm_id} has a call already")
        return call

    async def offer(
        self,
        alarm_id: int,
        gateway: str,
        device: str,
        *,
        callback_by: str | None = None,
        unless_live: bool = False,
    ) -> Call | None:
        """A new call for the case: offered to the gateway now, or waiting for the call its
        speakerphone is in. None if `unless_live` and the case has a call already."""
        now = utc_now()

        def unit(conn: Conn) -> tuple[Call, Call | None, str | None] | None:
            if table.alarm_resolved(conn, alarm_id):
                raise Conflict.said("案件已办结", f"alarm {alarm_id} is resolved")
            if unless_live and table.live_for_alarm(conn, alarm_id):
                return None
            busy = table.busy(conn, gateway)
            call = Call(
                id=f"call-{alarm_id}-{secrets.token_hex(4)}",
                alarm_id=alarm_id,
                gateway=gateway,
                device=device,
                status=CallStatus.OFFERING if busy is None else CallStatus.WAITING,
                offered_at=now,
                callback_by=callback_by,
            )
            command = None if busy is not None else _command_id()
            table.save(conn, call, command)
            return call, busy, command

        made = await self.db.write(unit)
        if made is None:
            return None
        call, busy, command = made
        self._changed(call)
        if busy is not None:  # one speakerphone per gateway: after the call in progress
            await self._note(alarm_id, SYSTEM, "call_waiting", f"{call.id} after {busy.id}")
        elif command is not None:
            await self._send_offer(call, command)
        return call

    async def _send_offer(self, call: Call, command_id: str) -> None:
        args: dict[str, str | int | float | bool] = {
            "action": VoiceAction.OFFER.value,
            "call": call.id,
        }
        if call.callback_by is not None:
            args["callback"] = True
        command = Command(id=command_id, ts=utc_now(), device=call.device, args=args)
        if not await self._send_command(call.gateway, VOICE_COMMAND, command):
            await self._end(call.id, SYSTEM, "the broker is unreachable", action="call_failed")

    async def _next_waiting(self, gateway: str) -> None:
        """The gateway's speakerphone is free: the oldest waiting call is offered now."""

        def unit(conn: Conn) -> tuple[Call, str] | None:
            if table.busy(conn, gateway) is not None:
                return None
            waiting = [c for c in table.of_gateway(conn, gateway) if c.status is CallStatus.WAITING]
            if not waiting:
                return None
            call = waiting[0]
            call.status = CallStatus.OFFERING
            command = _command_id()
            table.save(conn, call, command)
            return call, command

        offered = await self.db.write(unit)
        if offered is not None:
            call, command = offered
            self._changed(call)
            await self._send_offer(call, command)

    # ---- the gateway's replies ------------------------------------------------------------

    async def on_reply(self, reply: Reply) -> None:
        """A gateway's answer to the command that offered a call: ringing, connected, ended,
        or refused."""
        if not reply.id.startswith("voff-"):
            return  # not the offer of a call
        ends: list[tuple[str, str, str]] = []

        def unit(conn: Conn) -> tuple[Call, Notes, bool] | None:
            call = table.by_offer(conn, reply.id)
            if call is None or call.gateway != reply.gateway or not call.live:
                return None
            notes, changed = _gateway_says(call, reply, ends)
            if changed:
                table.save(conn, call)
            return call, notes, changed

        said = await self.db.write(unit)
        if said is None:
            return
        call, notes, changed = said
        if changed:
            self._changed(call)
        for action, actor, detail in notes:
            await self._note(call.alarm_id, actor, action, detail)
        for ended_by, reason, action in ends:  # the gateway said so: not told again
            await self._end(call.id, ended_by, reason, action=action, tell=False)

    # ---- the operators ----------------------------------------------------------------------

    async def answer(self, call_id: str, actor: str, sdp: str) -> Call:
        """Take a ringing call (exactly one operator does); its SDP answer to the gateway."""
        now = utc_now()

        def unit(conn: Conn) -> Call:
            call = table.get(conn, call_id)
            if call is None:
                raise NotFound.said("没有这个呼叫", f"no call {call_id}")
            if call.callback_by is not None and call.callback_by != actor:
                raise Conflict.said(
                    f"{call.callback_by} 正在回拨", f"{call.callback_by} is calling back"
                )
            if call.answered_by is not None:
                raise Conflict.said(
                    f"已由 {call.answered_by} 接听", f"answered by {call.answered_by}"
                )
            if call.status is not CallStatus.RINGING:
                raise Conflict.said(
                    "呼叫已结束" if not call.live else "呼叫尚未接通到网关",
                    f"call {call_id} is {call.status}, not ringing",
                )
            call.status, call.answered_by, call.answered_at = CallStatus.ANSWERED, actor, now
            call.sdp = None  # the answering page has it; nobody else needs it now
            table.save(conn, call)
            return call

        call = await self.db.write(unit)
        self._changed(call)
        await self._record(actor, "call.answer", f"alarm {call.alarm_id} call {call.id}")
        await self._note(call.alarm_id, actor, "call_answered", call.id)
        if not await self._send(call, VoiceAction.ANSWER, document=sdp):
            await self._end(call.id, SYSTEM, "the broker is unreachable", action="call_failed")
        return call

    async def hangup(self, call_id: str, actor: str) -> Call:
        call = await self.get(call_id)
        if not call.live:
            raise Conflict.said("通话已结束", f"call {call_id} has ended ({call.reason})")
        ended = await self._end(call_id, actor, f"hung up by {actor}")
        if ended is None:  # ended meanwhile (the resident, or another page)
            call = await self.get(call_id)
            raise Conflict.said("通话已结束", f"call {call_id} has ended ({call.reason})")
        await self._record(actor, "call.hangup", f"alarm {ended.alarm_id} call {ended.id}")
        return ended

    # ---- ending -----------------------------------------------------------------------------

    async def _end(
        self,
        call_id: str,
        ended_by: str,
        reason: str,
        *,
        action: str = "call_ended",
        tell: bool = True,
        only: frozenset[CallStatus] | None = None,
    ) -> Call | None:
        """End a call once (None if it had ended, or is not in one of the states `only`): on
        the timeline with its length and who ended it; the gateway told (unless it is the
        one that said so); the gateway's next waiting call offered."""
        now = utc_now()

        def unit(conn: Conn) -> tuple[Call, bool] | None:
            call = table.get(conn, call_id)
            if call is None or not call.live or (only is not None and call.status not in only):
                return None
            was_offered = call.status not in (CallStatus.OFFERING, CallStatus.WAITING)
            call.status, call.ended_at, call.ended_by, call.reason = (
                CallStatus.ENDED,
                now,
                ended_by,
                reason[:200],
            )
            call.sdp = None
            table.save(conn, call)
            return call, was_offered

        ended = await self.db.write(unit)
        if ended is None:
            return None
        call, was_offered = ended
        self._changed(call)
        detail = f"{call.id} after {call.talk_s():.0f} s talk: {reason}"
        await self._note(call.alarm_id, ended_by, action, detail)
        if tell and was_offered:
            await self._send(call, VoiceAction.HANGUP)
        await self._next_waiting(call.gateway)
        return call

    async def _send(self, call: Call, action: VoiceAction, document: str | None = None) -> bool:
        command = Command(
            id=f"voice-{secrets.token_hex(8)}",
            ts=utc_now(),
            device=call.device,
            args={"action": action.value, "call": call.id},
            document=document,
        )
        return await self._send_command(call.gateway, VOICE_COMMAND, command)

    def _changed(self, call: Call) -> None:
        self._publish(call.model_dump(mode="json"))


def _command_id() -> str:
    """The id of a command that offers a call (the gateway's replies name it)."""
    return f"voff-{secrets.token_hex(8)}"


def _gateway_says(call: Call, reply: Reply, ends: list[tuple[str, str, str]]) -> tuple[Notes, bool]:
    """What the gateway's reply does to the call (in place): the timeline's lines, whether it
    changed; an end it asks for goes to `ends` as (ended by, reason, action)."""
    voice = reply.voice
    notes: Notes = []
    if not reply.ok or voice is None:
        if call.status is CallStatus.OFFERING:
            ends.append((SYSTEM, reply.detail or "refused", "call_failed"))
        return notes, False
    changed = False
    if voice.prompt_played and not call.prompt_played:
        call.prompt_played = changed = True
        notes.append(("call_prompt", SYSTEM, f"{call.id}: prompt played"))
    if voice.state is CallState.RINGING and call.status is CallStatus.OFFERING:
        call.status, call.sdp, changed = CallStatus.RINGING, voice.sdp, True
        notes.append(("call_offered", SYSTEM, f"{call.id} ringing at {call.device}"))
    elif voice.state is CallState.CONNECTED and call.status in (
        CallStatus.RINGING,
        CallStatus.ANSWERED,
    ):
        call.status, call.connected_at, changed = CallStatus.CONNECTED, utc_now(), True
        notes.append(("call_connected", call.answered_by or SYSTEM, call.id))
    elif voice.state is CallState.ENDED:
        ended_by = "resident" if voice.reason == "the resident hung up" else SYSTEM
        ends.append((ended_by, voice.reason or "ended at the gateway", "call_ended"))
    return notes, changed
