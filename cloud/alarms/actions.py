"""The duty room's actions on a case as the web app offers them: each is casework's unit of
work (cloud/alarms/casework.py), then what follows from it — the changed alarm goes to every
open board, and an accepted call lights "help is coming" at the resident's button (the
command, sent or not, is in the alarm's log). Refusals are casework's: `NotFound`, `Conflict`,
`Refused` (cloud/errors.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from cloud.alarms.book import AlarmBook
from cloud.alarms.casework import Casework
from cloud.alarms.model import Alarm, FalseAlarmCause, Outcome
from contract.models import Command, utc_now

#: Publish a command to a gateway (name, command); False if the broker cannot take it now.
SendCommand = Callable[[str, str, Command], Awaitable[bool]]
#: Push a changed alarm to the open boards.
Announce = Callable[[Alarm], object]


class CaseActions:
    def __init__(
        self,
        casework: Casework,
        book: AlarmBook,
        *,
        announce: Announce,
        send_command: SendCommand,
    ) -> None:
        self.casework = casework
        self.book = book
        self.announce = announce
        self.send_command = send_command

    async def _changed(self, change: Awaitable[Alarm]) -> Alarm:
        alarm = await change
        self.announce(alarm)
        return alarm

    async def mark_shown(self, alarm_id: int, actor: str) -> Alarm:
        """The page drew this alarm: the 'shown to an operator' time (not announced)."""
        return await self.casework.mark_shown(alarm_id, actor)

    async def mark_shown_many(self, alarm_ids: Iterable[int], actor: str) -> list[int]:
        """The page drew these alarms; the ids whose first showing this was."""
        return await self.casework.mark_shown_many(alarm_ids, actor)

    async def accept(self, alarm_id: int, actor: str) -> Alarm:
        alarm = await self._changed(self.casework.accept(alarm_id, actor))
        if alarm.kind == "call":
            # light "help is coming" at the resident's button
            command = Command(
                id=f"acc-{alarm.id}-{utc_now():%H%M%S%f}", ts=utc_now(), device=alarm.device
            )
            sent = await self.send_command(alarm.gateway, "call_accepted", command)
            outcome = "sent" if sent else "NOT sent"
            await self.book.note(
                alarm.id,
                actor,
                "command",
                f"call_accepted to {alarm.gateway}/{alarm.device}: {outcome}",
            )
        return alarm

    async def dispatch(self, alarm_id: int, actor: str, to: str, note: str) -> Alarm:
        return await self._changed(self.casework.dispatch(alarm_id, actor, to, note))

    async def feedback(self, alarm_id: int, actor: str, note: str) -> Alarm:
        return await self._changed(self.casework.feedback(alarm_id, actor, note))

    async def resolve(
        self,
        alarm_id: int,
        actor: str,
        outcome: Outcome,
        note: str,
        cause: FalseAlarmCause | None,
    ) -> Alarm:
        return await self._changed(self.casework.resolve(alarm_id, actor, outcome, note, cause))

    async def verify(self, alarm_id: int, actor: str, note: str) -> Alarm:
        """A supervisor's check of a resolved case (not announced: the board no longer
        shows it)."""
        return await self.casework.verify(alarm_id, actor, note)
