"""One-key voice against real parts: Mosquitto, the cloud, the gateway agent on simulated
hardware whose microphone is a tone WAV and whose speaker is a WAV recorder (the profile
`rpi4-voice`, gw-ld01 of a copy of the demo site)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import GatewayConfig, load_gateway_config
from edge.drivers.call_button import CallButton
from gateway.agent import GatewayAgent
from gateway.uplink_settings import BrokerParams
from tests.cloud.conftest import (
    RunningCloud,
    cloud_settings,
    end_session,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.gateway.conftest import FAST
from tests.gateway.helpers import DEMO_SITE, clear_retained_status
from tests.servers import Mosquitto
from tests.voice.tones import write_tone

RESIDENT_HZ = 1000.0  # what the home's microphone hears
OPERATOR_HZ = 1700.0  # what the duty room's microphone hears


@pytest.fixture
def voice_site(tmp_path: Path) -> Path:
    """The demo site with gw-ld01 on the board profile with a speakerphone, and a second
    call button there (call-0102, in the home next door)."""
    text = DEMO_SITE.read_text(encoding="utf-8")
    first = "      - {id: call-0101, model: call_button_gpio, home: h-01-0101,"
    second = (
        "      - {id: call-0102, model: call_button_gpio, home: h-01-0102,"
        " pins: {button: 16, led: 20, buzzer: 21}}\n"
    )
    assert first in text
    text = text.replace("profile: rpi4-standard", "profile: rpi4-voice", 1)
    text = text.replace(first, second + first, 1)
    site = tmp_path / "site.yaml"
    site.write_text(text, "utf-8")
    return site


@pytest.fixture
def tones(tmp_path: Path) -> dict[str, Path]:
    return {
        "resident": write_tone(tmp_path / "resident-1000.wav", RESIDENT_HZ),
        "operator": write_tone(tmp_path / "operator-1700.wav", OPERATOR_HZ),
    }


@pytest.fixture
async def voice_cloud(
    tmp_path: Path, mosquitto: Mosquitto, voice_site: Path
) -> AsyncIterator[RunningCloud]:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, site_file=voice_site)
    async with running_cloud(settings) as running:
        yield running
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


def with_audio(config: GatewayConfig, **changes: Any) -> GatewayConfig:
    """The configuration with its profile's audio settings changed (e.g. prompt_after_s)."""
    audio = config.profile.audio
    assert audio is not None
    profile = config.profile.model_copy(update={"audio": audio.model_copy(update=changes)})
    return dataclasses.replace(config, profile=profile)


@pytest.fixture
def make_voice_agent(
    tmp_path: Path, mosquitto: Mosquitto, voice_site: Path, tones: dict[str, Path]
) -> Iterator[Callable[..., GatewayAgent]]:
    agents: list[GatewayAgent] = []

    def make(*, capture: Path | None = None, port: int | None = None, **audio: Any) -> GatewayAgent:
        config = load_gateway_config(voice_site, "gw-ld01")
        if audio:
            config = with_audio(config, **audio)
        agent = GatewayAgent(
            config,
            broker=BrokerParams(
                port=port or mosquitto.port,
                username="gw-ld01",
                password=mosquitto.users["gw-ld01"],
            ),
            outbox_path=tmp_path / f"gw-ld01-{len(agents)}.sqlite3",
            simulate=True,
            options=FAST,
        )
        assert agent.hardware is not None
        agent.hardware.audio = {
            "capture": str(capture or tones["resident"]),
            "playback": str(tmp_path / "speaker.wav"),
        }
        agents.append(agent)
        agent.start()
        assert agent.wait_connected(10)
        return agent

    yield make
    for agent in agents:
        agent.close()
    clear_retained_status(mosquitto, "gw-ld01")


def button(agent: GatewayAgent, device: str = "call-0101") -> CallButton:
    driver = agent.drivers[device]
    assert isinstance(driver, CallButton)
    return driver


async def operator_client(cloud: RunningCloud, user: str = "op") -> httpx.AsyncClient:
    return await signed_in(cloud.url, user)
