"""Voice calls shared by two cloud processes on one database, on each backend: a call offered
by the process that raised its alarm rings through the gateway's answer that reaches another,
two operators answering at once through the two processes give it to one, and both list the
same calls. (The whole path with a real gateway and broker: tests/voice/.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from cloud.db.database import Database
from cloud.errors import Conflict
from cloud.voice.desk import VoiceDesk
from contract.models import Command, Reply
from contract.voice import CallState, VoiceReport

GATEWAY, DEVICE = "gw-ld01", "call-0101"


class Process:
    """One cloud process's switchboard: what it sends to gateways and tells its pages."""

    def __init__(self, db: Database) -> None:
        self.sent: list[Command] = []
        self.pages: list[dict[str, object]] = []
        self.timeline: list[tuple[int, str, str]] = []
        self.desk = VoiceDesk(
            db=db,
            send_command=self.send,
            note=self.note,
            record=self.record,
            publish=self.pages.append,
            has_audio=lambda gateway: gateway == GATEWAY,
        )

    async def send(self, gateway: str, name: str, command: Command) -> bool:
        self.sent.append(command)
        return True

    async def note(self, alarm_id: int, actor: str, action: str, detail: str) -> None:
        self.timeline.append((alarm_id, actor, action))

    async def record(self, actor: str, action: str, detail: str) -> None:
        pass


@asynccontextmanager
async def two_processes(database_url: str) -> AsyncIterator[tuple[Process, Process]]:
    first, second = await Database.open(database_url), await Database.open(database_url)
    try:
        yield Process(first), Process(second)
    finally:
        await first.close()
        await second.close()


def ringing(offer: Command, sdp: str = "v=0 offer") -> Reply:
    return Reply(
        id=offer.id,
        gateway=GATEWAY,
        ok=True,
        voice=VoiceReport(
            call=str(offer.args["call"]), device=DEVICE, state=CallState.RINGING, sdp=sdp
        ),
    )


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("db_backend")
async def test_a_call_offered_by_one_process_is_answered_once_through_either(
    database_url: str,
) -> None:
    async with two_processes(database_url) as (a, b):
        a.desk.alarm_raised(7, "call", GATEWAY, DEVICE)  # a raised the call alarm
        await until(lambda: a.sent)
        [offer] = a.sent
        # the gateway's answer reaches b (it holds the gateway's shard): every page rings
        await b.desk.on_reply(ringing(offer))
        [call] = await a.desk.calls()
        assert (call.status, call.sdp) == ("ringing", "v=0 offer")
        assert [c.id for c in await b.desk.calls()] == [call.id]

        # two operators answer at once, one through each process: one gets it
        results = await asyncio.gather(
            a.desk.answer(call.id, "op", "v=0 answer-op"),
            b.desk.answer(call.id, "sup", "v=0 answer-sup"),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, Conflict)]
        assert len(won) == 1 and len(lost) == 1
        winner = won[0].answered_by
        assert winner is not None and winner in str(lost[0])  # the other is told who did
        answers = [c for c in a.sent + b.sent if c.args["action"] == "answer"]
        assert [c.document for c in answers] == [f"v=0 answer-{winner}"]

        # a second alarm of the same call button while it talks waits; hung up through b,
        # the waiting one is offered by b
        b.desk.alarm_raised(8, "call", GATEWAY, DEVICE)
        await until(lambda: any(p["status"] == "waiting" for p in b.pages))
        ended = await b.desk.hangup(call.id, "sup")
        assert (ended.status, ended.ended_by) == ("ended", "sup")
        hangups = [c for c in b.sent if c.args["action"] == "hangup"]
        assert len(hangups) == 1
        offers = [c for c in b.sent if c.args["action"] == "offer"]
        assert len(offers) == 1 and str(offers[0].args["call"]).startswith("call-8-")
        with pytest.raises(Conflict):
            await a.desk.hangup(call.id, "op")  # already ended, whichever process is asked
        statuses = {c.alarm_id: c.status for c in await a.desk.calls()}
        assert statuses == {7: "ended", 8: "offering"}


@pytest.mark.usefixtures("db_backend")
async def test_one_alarm_gets_one_call_when_two_processes_are_told_at_once(
    database_url: str,
) -> None:
    async with two_processes(database_url) as (a, b):
        a.desk.alarm_raised(9, "call", GATEWAY, DEVICE)
        b.desk.alarm_raised(9, "call", GATEWAY, DEVICE)
        await until(lambda: not a.desk._tasks and not b.desk._tasks)  # both have decided
        assert len(a.sent) + len(b.sent) == 1
        assert len(await a.desk.calls()) == 1
