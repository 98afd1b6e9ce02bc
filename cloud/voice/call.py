"""A voice call as the duty room's pages see it, and its states."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from contract.models import utc_now


class CallStatus(StrEnum):
    WAITING = "waiting"  # the gateway's speakerphone is in another call: offered after it
    OFFERING = "offering"  # cmd/voice offer sent; the gateway has not answered yet
    RINGING = "ringing"  # the gateway offers it: every open board rings
    ANSWERED = "answered"  # an operator took it; connecting
    CONNECTED = "connected"
    ENDED = "ended"


#: States in which the gateway may not know the call as the cloud does (after an outage).
UNCONFIRMED = frozenset({CallStatus.OFFERING, CallStatus.RINGING, CallStatus.ANSWERED})


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
