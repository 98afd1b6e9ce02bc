"""One-key voice (一键语音): the signalling between a gateway and the duty room, carried by
what the contract already has — the cloud's `cmd/voice` Command and the gateway's Reply.

    cloud → gateway  cmd/voice  args {"action": "offer", "call": C}          ask for a call
    gateway → cloud  reply      voice {call C, state ringing, sdp: the offer}
    cloud → gateway  cmd/voice  args {"action": "answer", "call": C}, document: the answer
    gateway → cloud  reply      voice {call C, state connected}
    either side      cmd/voice  args {"action": "hangup", "call": C} / reply voice {state ended}

Every later report about call C is a Reply whose `id` is the id of the command that offered
C. The gateway's SDP offer carries all its ICE candidates (no trickle); so does the answer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: The command name of every voice command (`sc/v1/{gw}/cmd/voice`).
VOICE_COMMAND = "voice"
#: Longest SDP (characters) either side may send: an audio-only offer with its candidates is
#: 1–3 kB; a gateway with many interfaces stays well under this.
MAX_SDP = 12_000

CallId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.:-]{8,64}$", description="The call's id, chosen by the cloud"),
]


class VoiceAction(StrEnum):
    """What a `cmd/voice` asks of the gateway (its `args.action`)."""

    OFFER = "offer"  # open a call at `device` and offer it (the Reply carries the SDP offer)
    ANSWER = "answer"  # the duty room answered: `document` is the SDP answer
    HANGUP = "hangup"  # the duty room hung up (or the call is withdrawn)


class CallState(StrEnum):
    RINGING = "ringing"  # offered, nobody has answered yet
    CONNECTED = "connected"  # audio flows both ways
    ENDED = "ended"


class VoiceReport(BaseModel):
    """A gateway's word on one call, inside a Reply (`Reply.voice`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call: CallId
    device: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="The call button")
    state: CallState
    sdp: str | None = Field(
        None, max_length=MAX_SDP, description="The gateway's SDP offer (with state ringing)"
    )
    prompt_played: bool = Field(
        False, description="The calm recorded prompt was played to the resident"
    )
    reason: str = Field("", max_length=200, description="Why the call ended (state ended)")
