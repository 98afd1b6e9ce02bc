"""The voice engine wired into the agent: `cmd/voice` in (from paho's thread, never blocking
it), Replies out through the outbox, the call's state on the button's LED, and the button's
press during a connected call as the resident's hang-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

from pydantic import ValidationError

from contract.catalogue import CONFIGS_DIR
from contract.models import Command, Reply, decode
from contract.profiles import AudioConfig
from contract.voice import CallState, VoiceReport
from edge.drivers.base import Driver, Hardware
from edge.drivers.call_button import CallButton
from gateway.voice.engine import AudioDevices, VoiceEngine, VoiceError

log = logging.getLogger(__name__)


class VoiceService:
    def __init__(
        self,
        gateway_id: str,
        config: AudioConfig,
        hardware: Hardware,
        *,
        drivers: Callable[[], Mapping[str, Driver]],
        send_reply: Callable[[Reply], None],
        configs_dir: Path | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self._drivers = drivers
        self._send_reply = send_reply
        devices = AudioDevices(
            capture=hardware.audio_device("capture", config.capture),
            playback=hardware.audio_device("playback", config.playback),
            prompt=(configs_dir or CONFIGS_DIR) / config.prompt,
        )
        self.engine = VoiceEngine(config, devices, report=self._report, light=self._light)

    def take(self, payload: bytes, retained: bool) -> bool:
        """Carry out a `cmd/voice` (answered later, on the engine's thread); False when it
        is not one to carry out (the agent's command path says why)."""
        if retained:
            return False
        try:
            command = decode(Command, payload)
        except ValidationError:
            return False
        self.hook_buttons()
        self.engine.command(command).add_done_callback(lambda done: self._answer(command, done))
        return True

    def hook_buttons(self) -> None:
        """Let every call button hang up its connected call (drivers change with configs)."""
        for driver in self._drivers().values():
            if isinstance(driver, CallButton) and driver.on_hangup is None:
                driver.on_hangup = self.engine.resident_hangup

    def close(self) -> None:
        self.engine.close()

    def _answer(self, command: Command, done: Future[tuple[str, VoiceReport | None]]) -> None:
        try:
            detail, report = done.result()
        except VoiceError as exc:
            self._reply(command.id, False, str(exc), None)
        except Exception as exc:
            log.exception("voice command failed id=%s", command.id)
            self._reply(command.id, False, f"voice failed: {exc!r}", None)
        else:
            self._reply(command.id, True, detail, report)

    def _report(self, command_id: str, report: VoiceReport, detail: str) -> None:
        self._reply(command_id, True, detail, report)

    def _reply(self, command_id: str, ok: bool, detail: str, report: VoiceReport | None) -> None:
        log.info("voice reply id=%s ok=%s detail=%r", command_id, ok, detail)
        self._send_reply(
            Reply(id=command_id, gateway=self.gateway_id, ok=ok, detail=detail[:500], voice=report)
        )

    def _light(self, device: str, state: CallState) -> None:
        driver = self._drivers().get(device)
        if isinstance(driver, CallButton):
            driver.show_call(state)
