"""Remote hush (远程消音) of a sounding smoke alarm, as GB/T 45839-2025 allows it: only by the
duty room's authorised roles (the web route takes duty roles only), only on a case an operator
has accepted and not yet resolved, only for a limited time (contract/hush.py: at most
`MAX_HUSH_S`; the detector sounds again and the gateway reports the alarm again if the smoke
persists), and only for a device that can be hushed (its model and wiring, `cannot_hush`).

Every request is in the audit and on the case's log, and so is the device's answer (the
gateway's `reply`: hushed, or refused with the reason), after which the case is pushed to the
boards again so an open case shows it. An answer is matched to its request through the audit
(the request's entry names its command), not through memory: one that arrives after a restart
of the cloud, or at another cloud process on the same database, is written on the case all
the same; a second answer to the same command, or one from another gateway, is not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from cloud.access.audit import Audit
from cloud.alarms.actions import Announce, SendCommand
from cloud.alarms.book import AlarmBook
from cloud.alarms.model import AlarmState, Mode
from cloud.alarms.queries import AlarmQueries
from cloud.errors import Conflict, Unavailable
from cloud.site.registry import Registry
from contract import hush
from contract.catalogue import Catalogue
from contract.models import Command, Reply, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HushSent:
    """A hush request on its way to the device; its answer comes on the case's log."""

    command_id: str
    alarm_id: int
    duration_s: int


class Hush:
    def __init__(
        self,
        *,
        alarms: AlarmQueries,
        book: AlarmBook,
        registry: Registry,
        audit: Audit,
        send_command: SendCommand,
        announce: Announce,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._alarms = alarms
        self._book = book
        self._registry = registry
        self._audit = audit
        self._send = send_command
        self._announce = announce
        self._catalogue = catalogue or Catalogue()
        self._answering = asyncio.Lock()  # one answer at a time: a repeat finds the first

    async def request(self, alarm_id: int, actor: str, duration_s: int) -> HushSent:
        """Ask the alarm's device to be silent for `duration_s`. Conflict (409, zh/en) when the
        case or the device does not allow it; Unavailable (503) if the broker cannot take it."""
        alarm = await self._alarms.get(alarm_id)
        if alarm.mode is Mode.DRILL:  # the detector is not sounding: never silence a real one
            raise Conflict.said(
                "演练事件：设备并未真正报警，不向设备发送消音指令",
                "a drill's incident: the device is not sounding, no hush is sent to it",
            )
        if alarm.state is AlarmState.ACTIVE:
            raise Conflict.said(
                "请先受理该告警，再远程消音", "accept the case before hushing the alarm"
            )
        if alarm.state is AlarmState.RESOLVED:
            raise Conflict.said("该告警已办结，不能消音", "the case is resolved: nothing to hush")
        reason = self._cannot_hush(alarm.gateway, alarm.device, alarm.model)
        if reason is not None:
            raise Conflict.said(*reason)
        command = Command(
            id=f"hush-{alarm.id}-{uuid.uuid4().hex[:12]}",
            ts=utc_now(),
            device=alarm.device,
            args={"duration_s": duration_s},
        )
        # on the case before it goes, and waiting for its answer: the device may answer
        # before the send returns
        detail = f"远程消音 {duration_s} 秒 / remote hush {duration_s} s"
        await self._book.note(alarm.id, actor, "hush", detail)
        where = f"alarm {alarm.id} {alarm.gateway}/{alarm.device}"
        tag = _tag(command.id)
        await self._audit.record(actor, "hush", f"{where}: {detail} {tag}")
        if not await self._send(alarm.gateway, hush.COMMAND, command):
            failed = "未发送：消息服务器不可达 / NOT sent: the broker cannot be reached"
            await self._book.note(alarm.id, actor, "hush.result", failed)
            await self._audit.record(actor, "hush.reply", f"{where}: {failed} {tag}")
            raise Unavailable.said(
                "消息服务器暂时不可达，消音未发送", "the broker cannot be reached: hush not sent"
            )
        return HushSent(command.id, alarm.id, duration_s)

    def _cannot_hush(self, gateway: str, device: str, model_name: str) -> tuple[str, str] | None:
        try:
            spec = self._registry.site.gateway(gateway)
            pins = next(d.pins for d in spec.devices if d.id == device)
        except (KeyError, StopIteration):
            return ("该设备已不在登记中，无法消音", "the device is no longer registered")
        return hush.cannot_hush(self._catalogue.model(model_name), pins)

    async def on_reply(self, reply: Reply) -> None:
        """A gateway's answer; only answers to hush requests the audit has concern us."""
        alarm_id = _alarm_of(reply.id)
        if alarm_id is None:
            return
        tag = _tag(reply.id)
        async with self._answering:
            if not await self._audit.has("hush", tag) or await self._audit.has("hush.reply", tag):
                return  # not a request of ours, or answered already
            alarm = await self._alarms.get(alarm_id)
            if alarm.gateway != reply.gateway:
                log.warning(
                    "gateway %s answered %s, sent to %s", reply.gateway, reply.id, alarm.gateway
                )
                return
            device = f"device {alarm.device}"
            verdict = "设备已消音 / hushed" if reply.ok else "设备未消音 / NOT hushed"
            detail = f"{verdict}: {reply.detail}"
            await self._book.note(alarm.id, device, "hush.result", detail)
            await self._audit.record(
                "system",
                "hush.reply",
                f"alarm {alarm.id} {alarm.gateway}/{alarm.device}: {detail} {tag}",
            )
        # the boards redraw an open case with its new history line
        self._announce(await self._alarms.get(alarm.id))
        if not reply.ok:
            log.warning("hush refused alarm=%d: %s", alarm.id, reply.detail)


def _tag(command_id: str) -> str:
    """How the audit names a hush command (the end of its entries' detail)."""
    return f"[{command_id}]"


def _alarm_of(command_id: str) -> int | None:
    """The alarm a hush command was for (`hush-{alarm}-{random}`), or None: not a hush."""
    parts = command_id.split("-")
    if len(parts) != 3 or parts[0] != "hush" or not parts[1].isdigit():
        return None
    return int(parts[1])
