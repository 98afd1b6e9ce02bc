"""The duty room's switchboard: every voice call, its state, and who may do what with it.

A call is offered for a new live call alarm whose gateway's board profile has `audio` (the
alarm was raised and pushed already; nothing here delays it): `cmd/voice` offer to the
gateway, whose Reply brings the SDP offer; every open board gets the call on the live
stream and rings. One operator answers (the first one; the others are refused, told who
did): `cmd/voice` answer with the browser's SDP answer. Either side hangs up. Every step is
on the case's timeline (offered, answered by whom, connected, ended with its length and who
hung up) and the operators' own steps in the audit.

The calls live in this process (a restart of the cloud forgets calls in progress; the
gateway's own ring time then ends them).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from cloud.errors import Conflict, NotFound, Refused
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


class CallStatus(StrEnum):
    WAITING = "waiting"  # the gateway's speakerphone is in another call: offered after it
    OFFERING = "offering"  # cmd/voice offer sent; the gateway has not answered yet
    RINGING = "ringing"  # the gateway offers it: every open board rings
    ANSWERED = "answered"  # an operator took it; connecting
    CONNECTED = "connected"
    ENDED = "ended"


#: States in which the gateway may not know the call as the cloud does (after an outage).
_UNCONFIRMED = frozenset({CallStatus.OFFERING, CallStatus.RINGING, CallStatus.ANSWERED})


class Call(BaseModel):
    """One call as the pages see it."""

    id: str
    alarm_id: int
    gateway: str
    device: str
    status: CallStatus
    sdp: str | None = None  # the gateway's offer, for the browser that answers
    offered_at: datetime
    answered_at: datetime | None = None
    answered_by: str | None = None
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    reason: str = ""
    prompt_played: bool = False
    callback_by: str | None = None  # an operator's call-back (回拨): theirs to answer

    @property
    def live(self) -> bool:
        return self.status is not CallStatus.ENDED

    def talk_s(self) -> float:
        """How long both sides were connected (0 if they never were)."""
        if self.connected_at is None:
            return 0.0
        end = self.ended_at or utc_now()
        return max(0.0, (end - self.connected_at).total_seconds())


class VoiceDesk:
    def __init__(
        self,
        *,
        send_command: SendCommand,
        note: Note,
        record: Record,
        publish: Publish,
        has_audio: Callable[[str], bool],
    ) -> None:
        self._send_command = send_command
        self._note = note
        self._record = record
        self._publish = publish
        self._has_audio = has_audio
        self._calls: dict[str, Call] = {}
        self._by_command: dict[str, str] = {}  # offering command id → call id
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed: set[int] = set()  # alarms resolved: never offered again

    # ---- what the pages read --------------------------------------------------------------

    def calls(self) -> list[Call]:
        """Calls in progress, and those that ended in the last ten minutes, oldest first."""
        now = utc_now()
        gone = {
            call_id
            for call_id, call in self._calls.items()
            if call.ended_at is not None and (now - call.ended_at).total_seconds() > KEEP_ENDED_S
        }
        if gone:
            for call_id in gone:
                del self._calls[call_id]
            self._by_command = {k: v for k, v in self._by_command.items() if v not in gone}
        return sorted(self._calls.values(), key=lambda c: c.offered_at)

    def get(self, call_id: str) -> Call:
        call = self._calls.get(call_id)
        if call is None:
            raise NotFound.said("没有这个呼叫", f"no call {call_id}")
        return call

    # ---- offering ---------------------------------------------------------------------------

    def alarm_raised(self, alarm_id: int, kind: str, gateway: str, device: str) -> None:
        """A new live alarm was pushed: offer a call if it is a call at a board with audio.
        Never waits (the offer is sent by a task of its own)."""
        if kind != "call" or not self._has_audio(gateway):
            return
        if any(c.alarm_id == alarm_id and c.live for c in self._calls.values()):
            return
        self._soon(self.offer(alarm_id, gateway, device))

    def gateway_state(self, gateway: str, state: str) -> None:
        """A gateway's uplink came back: a call it may not have heard of (the offer, or the
        operator's answer, lost while it was away) is offered again (a task of its own)."""
        if state != "online":
            return
        for call in list(self._calls.values()):
            if call.gateway == gateway and call.status in _UNCONFIRMED:
                self._soon(self._offer_again(call))

    def alarm_closed(self, alarm_id: int) -> None:
        """The case was resolved: its call (if any) ends, and none is offered again."""
        self._closed.add(alarm_id)
        for call in list(self._calls.values()):
            if call.alarm_id == alarm_id and call.live:
                self._soon(self._end_locked(call, SYSTEM, "the case was resolved"))

    def _soon(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer_again(self, call: Call) -> None:
        async with self._lock:
            if call.status not in _UNCONFIRMED:
                return
            await self._end(call, SYSTEM, "offered again: the gateway's link came back")
        if call.alarm_id not in self._closed:
            await self.offer(call.alarm_id, call.gateway, call.device, callback_by=call.callback_by)

    async def _end_locked(self, call: Call, ended_by: str, reason: str) -> None:
        async with self._lock:
            await self._end(call, ended_by, reason)

    async def callback(
        self, alarm_id: int, gateway: str, device: str, actor: str, *, resolved: bool = False
    ) -> Call:
        """An operator calls the home back from its case (回拨): the call is theirs to
        answer, and no calming prompt plays (nobody at the home is waiting for it)."""
        if resolved:
            self._closed.add(alarm_id)
            raise Conflict.said("案件已办结，不能回拨", f"alarm {alarm_id} is resolved")
        if not self._has_audio(gateway):
            raise Refused.said(
                "该网关没有语音设备，无法回拨", f"{gateway} has no audio: no call-back"
            )
        if any(c.alarm_id == alarm_id and c.live for c in self._calls.values()):
            raise Conflict.said("该案件已有语音呼叫", f"alarm {alarm_id} has a call already")
        await self._record(actor, "call.callback", f"alarm {alarm_id} {gateway}/{device}")
        await self._note(alarm_id, actor, "call_back", f"{gateway}/{device}")
        return await self.offer(alarm_id, gateway, device, callback_by=actor)

    async def offer(
        self, alarm_id: int, gateway: str, device: str, *, callback_by: str | None = None
    ) -> Call:
        if alarm_id in self._closed:
            raise Conflict.said("案件已办结", f"alarm {alarm_id} is resolved")
        busy = self._busy(gateway)
        call = Call(
            id=f"call-{alarm_id}-{secrets.token_hex(4)}",
            alarm_id=alarm_id,
            gateway=gateway,
            device=device,
            status=CallStatus.OFFERING if busy is None else CallStatus.WAITING,
            offered_at=utc_now(),
            callback_by=callback_by,
        )
        self._calls[call.id] = call
        if busy is not None:  # one speakerphone per gateway: after the call in progress
            self._changed(call)
            await self._note(alarm_id, SYSTEM, "call_waiting", f"{call.id} after {busy.id}")
            return call
        await self._send_offer(call)
        return call

    def _busy(self, gateway: str) -> Call | None:
        """The call the gateway's speakerphone is in (or being offered), if any."""
        return next(
            (
                c
                for c in self._calls.values()
                if c.gateway == gateway and c.live and c.status is not CallStatus.WAITING
            ),
            None,
        )

    async def _send_offer(self, call: Call) -> None:
        call.status = CallStatus.OFFERING
        args: dict[str, str | int | float | bool] = {
            "action": VoiceAction.OFFER.value,
            "call": call.id,
        }
        if call.callback_by is not None:
            args["callback"] = True
        command = Command(
            id=f"voff-{secrets.token_hex(8)}", ts=utc_now(), device=call.device, args=args
        )
        self._by_command[command.id] = call.id
        self._changed(call)
        if not await self._send_command(call.gateway, VOICE_COMMAND, command):
            await self._end(call, SYSTEM, "the broker is unreachable", action="call_failed")

    def _next_waiting(self, gateway: str) -> None:
        """The gateway's speakerphone is free: the oldest waiting call is offered now."""
        if self._busy(gateway) is not None:
            return
        waiting = [
            c
            for c in self._calls.values()
            if c.gateway == gateway and c.status is CallStatus.WAITING
        ]
        if waiting:
            self._soon(self._send_offer(min(waiting, key=lambda c: c.offered_at)))

    # ---- the gateway's replies ------------------------------------------------------------

    async def on_reply(self, reply: Reply) -> None:
        call_id = self._by_command.get(reply.id)
        if call_id is None:
            return  # not about a call of ours
        call = self._calls.get(call_id)
        if call is None or call.gateway != reply.gateway or not call.live:
            return
        async with self._lock:
            await self._gateway_says(call, reply)

    async def _gateway_says(self, call: Call, reply: Reply) -> None:
        voice = reply.voice
        if not reply.ok or voice is None:
            if call.status is CallStatus.OFFERING:
                await self._end(call, SYSTEM, reply.detail or "refused", action="call_failed")
            return
        if voice.prompt_played and not call.prompt_played:
            call.prompt_played = True
            await self._note(call.alarm_id, SYSTEM, "call_prompt", f"{call.id}: prompt played")
        if voice.state is CallState.RINGING and call.status is CallStatus.OFFERING:
            call.status, call.sdp = CallStatus.RINGING, voice.sdp
            await self._note(
                call.alarm_id, SYSTEM, "call_offered", f"{call.id} ringing at {call.device}"
            )
        elif voice.state is CallState.CONNECTED and call.status in (
            CallStatus.RINGING,
            CallStatus.ANSWERED,
        ):
            call.status, call.connected_at = CallStatus.CONNECTED, utc_now()
            await self._note(call.alarm_id, call.answered_by or SYSTEM, "call_connected", call.id)
        elif voice.state is CallState.ENDED:
            ended_by = "resident" if voice.reason == "the resident hung up" else SYSTEM
            await self._end(call, ended_by, voice.reason or "ended at the gateway", tell=False)
            return
        self._changed(call)

    # ---- the operators ----------------------------------------------------------------------

    async def answer(self, call_id: str, actor: str, sdp: str) -> Call:
        """Take a ringing call (exactly one operator does); its SDP answer to the gateway."""
        async with self._lock:
            call = self.get(call_id)
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
            call.status, call.answered_by, call.answered_at = (
                CallStatus.ANSWERED,
                actor,
                utc_now(),
            )
            call.sdp = None  # the answering page has it; nobody else needs it now
            self._changed(call)
        await self._record(actor, "call.answer", f"alarm {call.alarm_id} call {call.id}")
        await self._note(call.alarm_id, actor, "call_answered", call.id)
        sent = await self._send(call, VoiceAction.ANSWER, document=sdp)
        if not sent:
            await self._end(call, SYSTEM, "the broker is unreachable", action="call_failed")
        return call

    async def hangup(self, call_id: str, actor: str) -> Call:
        async with self._lock:
            call = self.get(call_id)
            if not call.live:
                raise Conflict.said("通话已结束", f"call {call_id} has ended ({call.reason})")
            await self._end(call, actor, f"hung up by {actor}")
        await self._record(actor, "call.hangup", f"alarm {call.alarm_id} call {call.id}")
        return call

    # ---- ending -----------------------------------------------------------------------------

    async def _end(
        self,
        call: Call,
        ended_by: str,
        reason: str,
        *,
        action: str = "call_ended",
        tell: bool = True,
    ) -> None:
        """End a call once: on the timeline with its length and who ended it; the gateway
        told (unless it is the one that said so)."""
        if not call.live:
            return
        was_offered = call.status not in (CallStatus.OFFERING, CallStatus.WAITING)
        call.status, call.ended_at, call.ended_by, call.reason = (
            CallStatus.ENDED,
            utc_now(),
            ended_by,
            reason[:200],
        )
        call.sdp = None
        self._changed(call)
        detail = f"{call.id} after {call.talk_s():.0f} s talk: {reason}"
        await self._note(call.alarm_id, ended_by, action, detail)
        if tell and was_offered:
            await self._send(call, VoiceAction.HANGUP)
        self._next_waiting(call.gateway)

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
