"""One-key voice for the duty room: the calls in progress, answering one (the first operator
gets it; the others are told who did), hanging up. The browser's SDP answer is relayed to the
gateway; the audio itself never passes through here."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud.voice.call import Call
from cloud.web.deps import AlarmsDep, DutyUser, RowId, SettingsDep, VoiceDep
from contract.voice import MAX_SDP

router = APIRouter(prefix="/api/calls", tags=["voice"])


class Answer(BaseModel):
    sdp: str = Field(min_length=10, max_length=MAX_SDP, description="The browser's SDP answer")


class IceServer(BaseModel):
    urls: str
    username: str | None = None
    credential: str | None = None


@router.get("/ice-servers", response_model=list[IceServer])
async def ice_servers(settings: SettingsDep, _user: DutyUser) -> list[IceServer]:
    """The STUN/TURN servers a browser answers calls with (SC_CLOUD_VOICE_ICE_SERVERS)."""
    password = settings.voice_turn_password
    return [
        IceServer(
            urls=url,
            username=settings.voice_turn_username,
            credential=password.get_secret_value() if password else None,
        )
        for url in settings.voice_ice_servers
    ]


@router.get("", response_model=list[Call])
async def calls(voice: VoiceDep, _user: DutyUser) -> list[Call]:
    """Calls in progress (ringing ones with the gateway's SDP offer), and those that ended in
    the last ten minutes."""
    return await voice.calls()


@router.post("/{call_id}/answer", response_model=Call)
async def answer(call_id: str, body: Answer, voice: VoiceDep, user: DutyUser) -> Call:
    """Take a ringing call: 409 if another operator answered first (the reason names them)."""
    return await voice.answer(call_id, user.name, body.sdp)


@router.post("/{call_id}/hangup", response_model=Call)
async def hangup(call_id: str, voice: VoiceDep, user: DutyUser) -> Call:
    return await voice.hangup(call_id, user.name)


@router.post("/callback/{alarm_id}", response_model=Call, status_code=201)
async def callback(alarm_id: RowId, alarms: AlarmsDep, voice: VoiceDep, user: DutyUser) -> Call:
    """Call the home of a case back (回拨): the call rings at the home's speakerphone and is
    the caller's to answer (others are refused); 422 if its gateway has no audio, 409 if the
    case is resolved or has a call already."""
    alarm = await alarms.get(alarm_id)
    return await voice.callback(
        alarm.id, alarm.gateway, alarm.device, user.name, resolved=alarm.state == "resolved"
    )
