"""One-key voice through the real broker, cloud and gateway agent, with aiortc standing in for
the duty room's browser (the Chromium version: tests/e2e/test_voice.py): who gets a call when
two operators answer at once, the resident hanging up, nobody answering, media that fails."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from contract.voice import CallState
from edge.drivers.call_button import Indicator
from gateway.agent import GatewayAgent
from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.faults.gate import UplinkGate
from tests.servers import Mosquitto
from tests.voice.conftest import button
from tests.voice.tones import peak_hz, read_wav


async def press(agent: GatewayAgent, device: str = "call-0101") -> None:
    assert agent.hardware is not None
    await asyncio.to_thread(agent.hardware.press_call, device)


async def the_call(client: httpx.AsyncClient, status: str, **fields: Any) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        calls = (await client.get("/api/calls")).json()
        return next(
            (
                c
                for c in calls
                if c["status"] == status and all(c[k] == v for k, v in fields.items())
            ),
            None,
        )

    call: dict[str, Any] = await eventually(found, timeout=15)
    return call


async def history(client: httpx.AsyncClient, alarm_id: int) -> list[dict[str, Any]]:
    case = (await client.get(f"/api/alarms/{alarm_id}")).json()
    entries: list[dict[str, Any]] = case["history"]
    return entries


async def answer_sdp(offer: str, tone: Path) -> tuple[RTCPeerConnection, str]:
    """The duty room's side: its microphone plays `tone`; its SDP answer."""
    pc = RTCPeerConnection()
    player = MediaPlayer(str(tone), loop=True)
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    assert player.audio is not None
    pc.addTrack(player.audio)
    await pc.setLocalDescription(await pc.createAnswer())
    return pc, pc.localDescription.sdp


async def test_two_operators_answer_at_once_one_gets_the_call_and_the_resident_hangs_up(
    voice_cloud: RunningCloud, make_voice_agent: Any, tones: dict[str, Path]
) -> None:
    agent = make_voice_agent()
    op, sup = await signed_in(voice_cloud.url, "op"), await signed_in(voice_cloud.url, "sup")
    try:
        await press(agent)
        call = await the_call(op, "ringing", device="call-0101")
        assert button(agent).showing is Indicator.RINGING
        pc, sdp = await answer_sdp(call["sdp"], tones["operator"])
        try:
            first, second = await asyncio.gather(
                op.post(f"/api/calls/{call['id']}/answer", json={"sdp": sdp}),
                sup.post(f"/api/calls/{call['id']}/answer", json={"sdp": sdp}),
            )
            codes = sorted([first.status_code, second.status_code])
            assert codes == [200, 409], (first.text, second.text)
            won, lost = (first, second) if first.status_code == 200 else (second, first)
            winner = won.json()["answered_by"]
            assert lost.json()["en"] == f"answered by {winner}"  # the other sees who did
            assert lost.json()["zh"] == f"已由 {winner} 接听"

            await the_call(op, "connected", id=call["id"], answered_by=winner)
            await eventually(lambda: button(agent).showing is Indicator.CONNECTED)

            await press(agent)  # the resident presses again: hangs up (not a new call)
            ended = await the_call(op, "ended", id=call["id"])
            assert ended["ended_by"] == "resident" and ended["reason"] == "the resident hung up"
            await eventually(lambda: button(agent).showing is Indicator.CALL_SENT)
            assert agent.voice is not None and agent.voice.engine.state("call-0101") is None
        finally:
            await pc.close()

        lines = await history(op, call["alarm_id"])
        said = [(e["action"], e["actor"]) for e in lines]
        assert ("call_offered", "system") in said
        assert ("call_answered", winner) in said
        assert ("call_connected", winner) in said
        assert ("call_ended", "resident") in said
        ended_line = next(e for e in lines if e["action"] == "call_ended")
        assert ended_line["detail"].endswith("talk: the resident hung up")
        audit = await voice_cloud.cloud.audit.recent(action="call.answer")
        assert [(a.actor, a.detail) for a in audit] == [
            (winner, f"alarm {call['alarm_id']} call {call['id']}")
        ]
        # one alarm: the press that hung up was not a new call
        alarms = (await op.get("/api/alarms")).json()
        assert [a["device"] for a in alarms if a["kind"] == "call"] == ["call-0101"]
    finally:
        await op.aclose()
        await sup.aclose()


async def test_nobody_answers_the_calm_prompt_plays_and_the_call_stays_offered(
    voice_cloud: RunningCloud, make_voice_agent: Any, tmp_path: Path
) -> None:
    agent = make_voice_agent(prompt_after_s=0.3)
    op = await signed_in(voice_cloud.url, "op")
    try:
        await press(agent)
        call = await the_call(op, "ringing", device="call-0101", prompt_played=True)
        assert agent.voice is not None
        assert agent.voice.engine.state("call-0101") is CallState.RINGING  # still offered
        lines = await history(op, call["alarm_id"])
        assert [e["detail"] for e in lines if e["action"] == "call_prompt"] == [
            f"{call['id']}: prompt played"
        ]

        resp = await op.post(f"/api/calls/{call['id']}/hangup")
        assert resp.status_code == 200 and resp.json()["ended_by"] == "op"
        # the LED goes back once the call is closed, the speaker's recording with it
        await eventually(lambda: button(agent).showing is Indicator.CALL_SENT)
        assert agent.voice.engine.state("call-0101") is None
        # what the home's speaker played: the whole prompt (11 s of speech), not silence
        samples, rate = read_wav(tmp_path / "speaker.wav")
        assert 10.5 < len(samples) / rate < 12.0
        assert float((samples**2).mean()) ** 0.5 > 0.02
        again = await op.post(f"/api/calls/{call['id']}/hangup")
        assert again.status_code == 409 and again.json()["zh"] == "通话已结束"
    finally:
        await op.aclose()


async def test_media_failing_the_alarm_still_arrives_and_the_call_says_why(
    voice_cloud: RunningCloud, make_voice_agent: Any, tmp_path: Path
) -> None:
    agent = make_voice_agent(capture=tmp_path / "unplugged.wav")
    op = await signed_in(voice_cloud.url, "op")
    try:
        await press(agent)
        call = await the_call(op, "ended", device="call-0101")
        assert call["reason"].startswith("media failed: microphone")
        assert "no such file" in call["reason"]
        alarms = (await op.get("/api/alarms")).json()
        alarm = next(a for a in alarms if a["id"] == call["alarm_id"])
        assert alarm["kind"] == "call" and alarm["level"] == 1 and alarm["state"] == "active"
        assert button(agent).showing is Indicator.CALL_SENT  # "call sent", as without voice
        lines = await history(op, call["alarm_id"])
        assert [e["action"] for e in lines if e["action"].startswith("call_")] == ["call_failed"]
        # accepting the case still lights "help is coming"
        assert (await op.post(f"/api/alarms/{alarm['id']}/accept")).status_code == 200
        await eventually(lambda: button(agent).showing is Indicator.HELP_COMING)
    finally:
        await op.aclose()


async def test_the_uplink_cut_while_it_rings_the_call_is_offered_again_when_it_returns(
    voice_cloud: RunningCloud, make_voice_agent: Any, mosquitto: Mosquitto, tones: dict[str, Path]
) -> None:
    gate = UplinkGate(mosquitto.port)
    gate.restore()
    agent = make_voice_agent(port=gate.port)
    op = await signed_in(voice_cloud.url, "op")
    peers: list[RTCPeerConnection] = []
    try:
        await press(agent)
        first = await the_call(op, "ringing", device="call-0101")
        gate.cut()
        await eventually(lambda: not agent.uplink.connected)
        pc, sdp = await answer_sdp(first["sdp"], tones["operator"])
        peers.append(pc)
        resp = await op.post(f"/api/calls/{first['id']}/answer", json={"sdp": sdp})
        assert resp.status_code == 200  # taken; the gateway cannot hear of it now
        assert agent.voice is not None
        assert agent.voice.engine.state("call-0101") is CallState.RINGING  # still offered

        gate.restore()
        again = await the_call(op, "ringing", device="call-0101")
        assert again["id"] != first["id"] and again["alarm_id"] == first["alarm_id"]
        old = next(c for c in (await op.get("/api/calls")).json() if c["id"] == first["id"])
        assert old["status"] == "ended"
        assert old["reason"] == "offered again: the gateway's link came back"
        pc, sdp = await answer_sdp(again["sdp"], tones["operator"])
        peers.append(pc)
        resp = await op.post(f"/api/calls/{again['id']}/answer", json={"sdp": sdp})
        assert resp.status_code == 200
        await the_call(op, "connected", id=again["id"])

        # the case resolved: its call ends, at the gateway too, and is not offered again
        alarm = again["alarm_id"]
        assert (await op.post(f"/api/alarms/{alarm}/accept")).status_code == 200
        done = {"outcome": "handled", "note": "通话确认安全"}
        assert (await op.post(f"/api/alarms/{alarm}/resolve", json=done)).status_code == 200
        ended = await the_call(op, "ended", id=again["id"])
        assert ended["reason"] == "the case was resolved"
        await eventually(lambda: agent.voice.engine.state("call-0101") is None)
    finally:
        for peer in peers:
            await peer.close()
        await op.aclose()
        gate.close()


async def test_a_second_call_at_the_same_gateway_waits_with_its_alarm_until_the_first_ends(
    voice_cloud: RunningCloud, make_voice_agent: Any
) -> None:
    agent = make_voice_agent()
    op = await signed_in(voice_cloud.url, "op")
    try:
        await press(agent)
        first = await the_call(op, "ringing", device="call-0101")
        await press(agent, "call-0102")  # the home next door, same speakerphone
        waiting = await the_call(op, "waiting", device="call-0102")
        assert waiting["alarm_id"] != first["alarm_id"]
        alarms = (await op.get("/api/alarms")).json()
        assert {a["device"] for a in alarms if a["kind"] == "call"} == {"call-0101", "call-0102"}
        assert button(agent, "call-0102").showing is Indicator.CALL_SENT  # its call is sent
        lines = await history(op, waiting["alarm_id"])
        assert [e["detail"] for e in lines if e["action"] == "call_waiting"] == [
            f"{waiting['id']} after {first['id']}"
        ]

        assert (await op.post(f"/api/calls/{first['id']}/hangup")).status_code == 200
        await the_call(op, "ringing", id=waiting["id"])  # its turn now
        assert agent.voice is not None
        await eventually(lambda: agent.voice.engine.state("call-0102") is CallState.RINGING)
        assert agent.voice.engine.state("call-0101") is None
        assert button(agent, "call-0102").showing is Indicator.RINGING
    finally:
        await op.aclose()


async def test_voice_that_cannot_start_never_stops_the_gateway_or_its_alarms(
    voice_cloud: RunningCloud, make_voice_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gateway.voice.service", None)  # as if not installed
    agent = make_voice_agent()
    assert agent.running and agent.voice is None
    op = await signed_in(voice_cloud.url, "op")
    try:
        await press(agent)
        call = await the_call(op, "ended", device="call-0101")
        assert call["reason"].startswith("voice could not start on this gateway: ModuleNotFound")
        alarms = (await op.get("/api/alarms")).json()
        assert [a["device"] for a in alarms if a["id"] == call["alarm_id"]] == ["call-0101"]
        assert button(agent).showing is Indicator.CALL_SENT
    finally:
        await op.aclose()


async def test_call_back_is_the_callers_and_refused_where_it_cannot_be(
    voice_cloud: RunningCloud, make_voice_agent: Any, mosquitto: Mosquitto
) -> None:
    agent = make_voice_agent()
    op, sup = await signed_in(voice_cloud.url, "op"), await signed_in(voice_cloud.url, "sup")
    gw2 = Publisher(mosquitto, "gw-ld02")
    try:
        # a call at gw-ld02, whose board has no audio: no call, and no call-back
        press2 = event(gateway="gw-ld02", device="call-0101", kind="call", type="press")
        await asyncio.to_thread(gw2.publish, "sc/v1/gw-ld02/event", press2)
        alarms = await eventually(lambda: _alarms_of(op, "gw-ld02"), timeout=10)
        refused = await op.post(f"/api/calls/callback/{alarms[0]['id']}")
        assert refused.status_code == 422
        assert refused.json()["zh"] == "该网关没有语音设备，无法回拨"

        # gw-ld01's resident pressed and the call was hung up: op calls back
        await press(agent)
        first = await the_call(op, "ringing", device="call-0101")
        assert (await op.post(f"/api/calls/{first['id']}/hangup")).status_code == 200
        back = await op.post(f"/api/calls/callback/{first['alarm_id']}")
        assert back.status_code == 201, back.text
        call = await the_call(op, "ringing", id=back.json()["id"], callback_by="op")
        taken = await sup.post(f"/api/calls/{call['id']}/answer", json={"sdp": "v=0 " * 5})
        assert taken.status_code == 409 and taken.json()["zh"] == "op 正在回拨"
        twice = await op.post(f"/api/calls/callback/{first['alarm_id']}")
        assert twice.status_code == 409 and twice.json()["zh"] == "该案件已有语音呼叫"
        lines = await history(op, first["alarm_id"])
        assert ("call_back", "op") in [(e["action"], e["actor"]) for e in lines]
        assert [a.actor for a in await voice_cloud.cloud.audit.recent(action="call.callback")] == [
            "op"
        ]

        # resolved: the call-back ends, and no other can start
        alarm = first["alarm_id"]
        assert (await op.post(f"/api/alarms/{alarm}/accept")).status_code == 200
        done = {"outcome": "handled", "note": "已回拨确认"}
        assert (await op.post(f"/api/alarms/{alarm}/resolve", json=done)).status_code == 200
        await the_call(op, "ended", id=call["id"], reason="the case was resolved")
        late = await op.post(f"/api/calls/callback/{alarm}")
        assert late.status_code == 409 and late.json()["zh"] == "案件已办结，不能回拨"
    finally:
        gw2.close()
        await op.aclose()
        await sup.aclose()


async def _alarms_of(client: httpx.AsyncClient, gateway: str) -> list[dict[str, Any]]:
    return [a for a in (await client.get("/api/alarms")).json() if a["gateway"] == gateway]


async def test_the_uplink_cut_during_a_call_the_talk_goes_on_and_it_ends_when_asked(
    voice_cloud: RunningCloud, make_voice_agent: Any, mosquitto: Mosquitto, tones: dict[str, Path]
) -> None:
    gate = UplinkGate(mosquitto.port)
    gate.restore()
    agent = make_voice_agent(port=gate.port)
    op = await signed_in(voice_cloud.url, "op")
    heard: list[float] = []  # when each frame of the home's tone reached the duty room
    pc, sdp = None, ""
    try:
        await press(agent)
        call = await the_call(op, "ringing", device="call-0101")
        pc, sdp = await answer_sdp(call["sdp"], tones["operator"])
        receivers = [t.receiver for t in pc.getTransceivers()]
        listening = asyncio.ensure_future(_listen(receivers[0].track, heard))
        assert (await op.post(f"/api/calls/{call['id']}/answer", json={"sdp": sdp})).is_success
        await the_call(op, "connected", id=call["id"])

        cut = gate.cut()
        await eventually(lambda: not agent.uplink.connected)
        # the audio goes directly, not through the broker: a second more of it after the cut
        await eventually(lambda: sum(t > cut for t in heard) >= 50, timeout=10)
        assert agent.voice is not None
        assert agent.voice.engine.state("call-0101") is CallState.CONNECTED

        gate.restore()
        assert await asyncio.to_thread(agent.wait_connected, 15)
        still = await the_call(op, "connected", id=call["id"])  # not offered again
        assert still["answered_by"] == "op"
        assert (await op.post(f"/api/calls/{call['id']}/hangup")).status_code == 200
        await eventually(lambda: agent.voice.engine.state("call-0101") is None)
        listening.cancel()
    finally:
        if pc is not None:
            await pc.close()
        await op.aclose()
        gate.close()


async def _listen(track: Any, heard: list[float]) -> None:
    """Note the arrival of every frame that is mostly the home's tone."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        channels = len(frame.layout.channels)  # packed: L R L R …
        samples = frame.to_ndarray().reshape(-1, channels).mean(axis=1)
        if samples.any() and abs(peak_hz(samples, frame.sample_rate)[0] - 1000) < 60:
            heard.append(time.time())
