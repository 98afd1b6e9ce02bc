"""Starting one-key voice with the agent, on a board whose profile has audio. Never in the
way of the alarms: if it cannot start (the `voice` extra missing, a broken install), the
gateway runs without it and says why to every `cmd/voice`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from contract.models import Reply
from contract.profiles import AudioConfig
from edge.drivers.base import Driver, Hardware

if TYPE_CHECKING:
    from gateway.voice.service import VoiceService

log = logging.getLogger(__name__)

#: What `cmd/voice` is answered on a board without audio.
NO_AUDIO = "no voice on this gateway: its board profile has no audio"


def start_voice(
    gateway_id: str,
    audio: AudioConfig | None,
    hardware: Hardware,
    *,
    drivers: Callable[[], Mapping[str, Driver]],
    send_reply: Callable[[Reply], None],
    configs_dir: Path | None,
) -> tuple[VoiceService | None, str]:
    """The running voice service, or None and why there is none."""
    if audio is None:
        return None, NO_AUDIO
    try:
        # aiortc and PyAV load only on a board with audio (the `voice` extra)
        from gateway.voice.service import VoiceService

        voice = VoiceService(
            gateway_id,
            audio,
            hardware,
            drivers=drivers,
            send_reply=send_reply,
            configs_dir=configs_dir,
        )
        voice.hook_buttons()
    except Exception as exc:
        log.exception("voice could not start; running without it")
        return None, f"voice could not start on this gateway: {exc!r}"[:300]
    return voice, NO_AUDIO
