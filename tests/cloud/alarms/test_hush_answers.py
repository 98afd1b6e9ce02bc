"""A hush's answer is matched to its request through the audit, not the memory of the process
that sent it: an answer that reaches a cloud restarted since (or another cloud process on the
same database) is written on the case; a second answer to the same command, an answer from
another gateway and one to a command never sent are not."""

from __future__ import annotations

from pathlib import Path

from cloud.access.audit import Audit
from cloud.alarms.hush import Hush
from cloud.site.registry import Registry
from contract.models import Command, Reply
from contract.site import load_site
from tests.cloud.alarms.test_hush import SMOKE, hush_site
from tests.cloud.helpers import FakeClock, Parts, book_parts
from tests.cloud.notify.test_fallback import SMOKE as SMOKE_DRAFT

__all__ = ["hush_site"]  # the fixture: gw-ld01's smoke alarm with its hush input wired


def _hush(parts: Parts, site: Path, sent: list[Command]) -> Hush:
    """A cloud process's hush desk; what it sends to a gateway is kept in `sent`."""

    async def send(gateway: str, name: str, command: Command) -> bool:
        sent.append(command)
        return True

    return Hush(
        alarms=parts.alarms,
        book=parts.book,
        registry=Registry(load_site(site)),
        audit=Audit(parts.db),
        send_command=send,
        announce=lambda alarm: None,
    )


async def test_an_answer_after_a_restart_is_written_on_the_case_once(
    database_url: str, hush_site: Path
) -> None:
    assert SMOKE_DRAFT.device == SMOKE
    clock = FakeClock()
    sent: list[Command] = []
    async with book_parts(database_url, clock) as parts:
        [raised] = await parts.book.apply([SMOKE_DRAFT], clock())
        alarm_id = raised.alarm.id
        await parts.casework.accept(alarm_id, "op")
        await _hush(parts, hush_site, sent).request(alarm_id, "op", 60)
    [command] = sent

    async with book_parts(database_url, clock) as parts:  # the cloud started again
        hush = _hush(parts, hush_site, [])
        answer = Reply(id=command.id, gateway="gw-ld01", ok=True, detail="hushed for 60 s")
        await hush.on_reply(answer)
        await hush.on_reply(answer)  # the same answer again (a QoS 1 repeat)
        await hush.on_reply(answer.model_copy(update={"gateway": "gw-ld02"}))
        await hush.on_reply(Reply(id=f"hush-{alarm_id}-000000000000", gateway="gw-ld01", ok=True))
        history = await parts.alarms.history(alarm_id)
    results = [h.detail for h in history if h.action == "hush.result"]
    assert results == ["设备已消音 / hushed: hushed for 60 s"]
