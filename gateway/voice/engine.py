"""The gateway's voice calls: one asyncio loop on a thread of its own runs aiortc; the agent
hands it `cmd/voice` commands (from paho's thread) and gets back Replies to send.

One call per call button at a time. A call rings (offered, its SDP offer in the Reply) until
the duty room answers, hangs up, or `ring_s` passes; while it rings unanswered for
`prompt_after_s`, the calm recorded prompt plays at the home once, and the call stays
offered. Connected, the home's microphone goes to the browser and the browser's audio to the
home's speaker. A press of the button while connected hangs up (the resident's way to end
it). Every change of state is reported (a Reply with the id of the offering command) and
shown on the button's LED.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

from contract.models import Command
from contract.profiles import AudioConfig
from contract.voice import CallState, VoiceAction, VoiceReport
from gateway.voice.media import MediaFailed, Speaker, microphone, pump

log = logging.getLogger(__name__)

#: (offering command id, report, detail) → None: send it as a Reply (the engine's thread).
Report = Callable[[str, VoiceReport, str], None]
#: (device, state) → None: show it on the button (the engine's thread).
Light = Callable[[str, CallState], None]


class VoiceError(Exception):
    """A voice command that cannot be carried out; the message is the Reply's detail."""


@dataclass(frozen=True)
class AudioDevices:
    """Where the microphone and the speaker are (ALSA names or WAV files) and the prompt."""

    capture: str
    playback: str
    prompt: Path


@dataclass(eq=False)
class _Call:
    id: str
    device: str
    command_id: str  # the cmd/voice that offered it: every report answers to it
    pc: RTCPeerConnection
    player: MediaPlayer
    speaker: Speaker
    state: CallState = CallState.RINGING
    prompt: bool = True  # play the calm prompt if nobody answers (not on a call-back)
    prompt_played: bool = False
    offered_at: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class VoiceStats:
    offered: int = 0
    connected: int = 0
    ended: int = 0
    failed: int = 0  # offers refused because the media could not be opened
    prompts: int = 0


class VoiceEngine:
    def __init__(
        self, config: AudioConfig, devices: AudioDevices, *, report: Report, light: Light
    ) -> None:
        self.config = config
        self.devices = devices
        self._report = report
        self._light = light
        self.stats = VoiceStats()
        self._calls: dict[str, _Call] = {}  # by device
        self._loop = asyncio.new_event_loop()
        #: held while something is handed to the loop, and by close() when it stops taking
        #: work: nothing is handed over after (it would never run)
        self._handing = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    # -- any thread ------------------------------------------------------------------------

    def command(self, command: Command) -> Future[tuple[str, VoiceReport | None]]:
        """Carry out a `cmd/voice`; the future gives the Reply's detail and report, or raises
        VoiceError with the reason."""
        with self._handing:
            if not self._stopping:
                return asyncio.run_coroutine_threadsafe(self._command(command), self._loop)
        stopped: Future[tuple[str, VoiceReport | None]] = Future()  # the gateway is stopping
        stopped.set_exception(VoiceError("voice has stopped: the gateway is stopping"))
        return stopped

    def resident_hangup(self, device: str) -> None:
        """The button pressed while its call is connected: end it (never waits: the button's
        thread must not wait for the call to close)."""
        with self._handing:
            if not self._stopping:
                asyncio.run_coroutine_threadsafe(self._resident_hangup(device), self._loop)

    def state(self, device: str) -> CallState | None:
        call = self._calls.get(device)
        return None if call is None else call.state

    def close(self) -> None:
        """End every call (reported as ended: the gateway stops) and stop the loop."""
        with self._handing:
            if self._stopping or not self._loop.is_running():
                return
            self._stopping = True
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    # -- the engine's loop -----------------------------------------------------------------

    async def _command(self, command: Command) -> tuple[str, VoiceReport | None]:
        action, call_id = command.args.get("action"), command.args.get("call")
        if not isinstance(call_id, str) or not call_id:
            raise VoiceError("voice needs args.call (the call's id)")
        if action == VoiceAction.OFFER:
            if command.device is None:
                raise VoiceError("voice offer needs 'device' (the call button)")
            return await self._offer(command, call_id, command.device)
        call = next((c for c in self._calls.values() if c.id == call_id), None)
        if action == VoiceAction.ANSWER:
            if call is None:
                raise VoiceError(f"no call {call_id} here (it has ended)")
            if not command.document:
                raise VoiceError("voice answer needs the SDP answer in 'document'")
            if call.state is not CallState.RINGING:
                raise VoiceError(f"call {call_id} is {call.state}, not ringing")
            try:
                await call.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=command.document, type="answer")
                )
            except Exception as exc:
                await self._end(call, f"the answer could not be used: {exc}")
                raise VoiceError(f"answer refused, call ended: {exc}") from None
            return f"call {call_id} answered; connecting", None
        if action == VoiceAction.HANGUP:
            if call is None:
                return f"no call {call_id} here (it has ended already)", None
            report = await self._end(call, "hung up by the duty room", report=False)
            return f"call {call_id} hung up", report
        raise VoiceError(f"unknown voice action {action!r} (offer, answer, hangup)")

    async def _offer(self, command: Command, call_id: str, device: str) -> tuple[str, VoiceReport]:
        old = self._calls.get(device)
        if old is not None:
            if old.id == call_id:
                if old.state is CallState.RINGING and old.pc.localDescription is not None:
                    return f"call {call_id} is ringing already", self._report_of(
                        old, sdp=old.pc.localDescription.sdp
                    )
                raise VoiceError(f"call {call_id} is {old.state} already")
            await self._end(old, "replaced by a new offer")
        busy = next(iter(self._calls.values()), None)
        if busy is not None:  # one microphone and speaker: one call at a time
            raise VoiceError(f"the speakerphone is in call {busy.id} (at {busy.device})")
        try:
            player, track = microphone(self.devices.capture)
        except MediaFailed as exc:
            self.stats.failed += 1
            raise VoiceError(f"media failed: {exc}") from None
        try:
            speaker = Speaker(self.devices.playback)
        except MediaFailed as exc:
            _stop_track(track)
            self.stats.failed += 1
            raise VoiceError(f"media failed: {exc}") from None
        pc = RTCPeerConnection(self._rtc_configuration())
        call = _Call(call_id, device, command.id, pc, player, speaker)
        call.prompt = command.args.get("callback") is not True
        self._calls[device] = call
        pc.addTrack(track)

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio":
                call.tasks.append(asyncio.ensure_future(pump(remote, speaker)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("voice call=%s device=%s connection=%s", call.id, device, state)
            if state == "connected" and call.state is CallState.RINGING:
                call.state = CallState.CONNECTED
                speaker.flush()  # the rest of a prompt must not delay the operator's voice
                self.stats.connected += 1
                self._light(device, CallState.CONNECTED)
                self._report(call.command_id, self._report_of(call), f"call {call.id} connected")
            elif state in ("failed", "closed") and self._calls.get(device) is call:
                await self._end(call, f"the connection {state}")

        try:
            await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        except Exception as exc:
            await self._end(call, f"media failed: {exc}", report=False)
            self.stats.failed += 1
            raise VoiceError(f"media failed: {exc}") from None
        call.tasks.append(asyncio.ensure_future(self._ring(call)))
        self.stats.offered += 1
        self._light(device, CallState.RINGING)
        log.info("voice call offered call=%s device=%s", call_id, device)
        return f"call {call_id} offered", self._report_of(call, sdp=pc.localDescription.sdp)

    async def _ring(self, call: _Call) -> None:
        """Prompt the resident once if nobody answers; give up after `ring_s`."""
        await asyncio.sleep(self.config.prompt_after_s)
        if call.prompt and call.state is CallState.RINGING and self._calls.get(call.device) is call:
            seconds = await asyncio.to_thread(call.speaker.play_file, self.devices.prompt)
            call.prompt_played = True
            self.stats.prompts += 1
            log.info("voice prompt played call=%s seconds=%.1f", call.id, seconds)
            self._report(call.command_id, self._report_of(call), "the calm prompt played")
        remaining = self.config.ring_s - (time.monotonic() - call.offered_at)
        await asyncio.sleep(max(0.0, remaining))
        if call.state is CallState.RINGING and self._calls.get(call.device) is call:
            await self._end(call, f"nobody answered in {self.config.ring_s:g} s")

    async def _resident_hangup(self, device: str) -> None:
        call = self._calls.get(device)
        if call is not None and call.state is CallState.CONNECTED:
            await self._end(call, "the resident hung up")

    async def _end(self, call: _Call, reason: str, *, report: bool = True) -> VoiceReport:
        """Close the call (idempotent); report it unless the caller answers with it."""
        ended = self._report_of(call, state=CallState.ENDED, reason=reason)
        if self._calls.get(call.device) is not call or call.state is CallState.ENDED:
            return ended
        call.state = CallState.ENDED
        del self._calls[call.device]
        self.stats.ended += 1
        for task in call.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        try:  # whatever fails in closing, the call is over: the LED and the report follow
            await call.pc.close()
            for sender in call.pc.getSenders():
                if sender.track is not None:
                    _stop_track(sender.track)
            await asyncio.to_thread(call.speaker.close)
        except Exception:
            log.exception("voice: closing call %s failed", call.id)
        self._light(call.device, CallState.ENDED)
        log.info("voice call ended call=%s device=%s reason=%s", call.id, call.device, reason)
        if report:
            self._report(call.command_id, ended, f"call {call.id} ended: {reason}")
        return ended

    async def _shutdown(self) -> None:
        """End every call, let what is under way finish (briefly), cancel the rest."""
        for call in list(self._calls.values()):
            await self._end(call, "the gateway stopped")
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            _, pending = await asyncio.wait(others, timeout=3)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _report_of(
        self,
        call: _Call,
        *,
        state: CallState | None = None,
        sdp: str | None = None,
        reason: str = "",
    ) -> VoiceReport:
        return VoiceReport(
            call=call.id,
            device=call.device,
            state=state or call.state,
            sdp=sdp,
            prompt_played=call.prompt_played,
            reason=reason[:200],
        )

    def _rtc_configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(
                urls=url, username=self.config.turn_username, credential=self.config.turn_password
            )
            for url in self.config.stun
        ]
        return RTCConfiguration(iceServers=servers)


def _stop_track(track: MediaStreamTrack) -> None:
    try:
        track.stop()
    except Exception:
        log.exception("voice: stopping the microphone failed")
