"""Gateway board profiles: the files in `firmware_configs/profiles/`, one gateway board each.

A profile says which GPIOs exist, which are reserved, where the MCP3008 sits, which serial
ports exist, the board's own alarm lamp and sounder, and whether it has a Zigbee coordinator.
Strict like every file operators write: errors name the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.site import load_yaml_model


@dataclass(frozen=True)
class SpiPins:
    """The GPIOs (BCM) of one hardware SPI port; `select[n]` is chip-select n."""

    clock: int
    mosi: int
    miso: int
    select: tuple[int, ...]


#: Hardware SPI ports of the Raspberry Pi header.
SPI_PINS = {0: SpiPins(clock=11, mosi=10, miso=9, select=(8, 7))}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdcConfig(_Strict):
    chip: Literal["mcp3008"] = "mcp3008"
    spi_port: Literal[0] = 0
    spi_device: int = Field(0, ge=0, le=1)
    vref: float = Field(3.3, gt=0, le=5.5)

    def pins(self) -> dict[int, str]:
        """The GPIOs this ADC's SPI bus uses, with what for."""
        spi, bus = SPI_PINS[self.spi_port], f"SPI{self.spi_port}"
        return {
            spi.clock: f"{bus} SCLK ({self.chip})",
            spi.mosi: f"{bus} MOSI ({self.chip})",
            spi.miso: f"{bus} MISO ({self.chip})",
            spi.select[self.spi_device]: f"{bus} CE{self.spi_device} ({self.chip})",
        }


class LocalAlarmConfig(_Strict):
    """The gateway's own sounder and lamp (in the stairwell or on the box): they react to a
    life-safety event at once, whether or not the uplink is there."""

    led: int = Field(ge=2, le=27, description="BCM GPIO of the alarm lamp / LED")
    buzzer: int | None = Field(None, ge=2, le=27, description="BCM GPIO of the sounder")
    led_active_high: bool = True
    buzzer_active_high: bool = True
    sound_s: float = Field(30.0, gt=0, le=3600, description="How long one alarm sounds")
    beep_s: float = Field(0.25, gt=0, le=5, description="On and off time of the sounder")
    call_s: float = Field(600.0, gt=0, le=86400, description="Lamp time for a call")

    def pins(self) -> dict[int, str]:
        pins = {self.led: "local alarm LED"}
        if self.buzzer is not None:
            pins[self.buzzer] = "local alarm buzzer"
        return pins


class AudioConfig(_Strict):
    """The board's audio for one-key voice (一键语音, docs/voice.md): typically a USB
    speakerphone. `capture` and `playback` are ALSA devices; the simulator and the tests put
    WAV files in their place (a source played as the microphone, a recorder as the speaker),
    as gpiozero's mock pins stand in for the GPIOs."""

    capture: str = Field("default", min_length=1, max_length=100, description="ALSA microphone")
    playback: str = Field("default", min_length=1, max_length=100, description="ALSA speaker")
    prompt: str = Field(
        "audio/prompt-zh.wav",
        pattern=r"^[A-Za-z0-9_./-]+\.wav$",
        description="The calm recorded prompt, a WAV under firmware_configs/",
    )
    prompt_after_s: float = Field(
        15.0, gt=0, le=600, description="Play the prompt when nobody has answered this long"
    )
    ring_s: float = Field(
        900.0, gt=0, le=86400, description="How long an unanswered call stays offered"
    )
    stun: list[str] = Field(
        default_factory=list, description="STUN/TURN URLs (turn:host:3478), if NAT needs them"
    )
    turn_username: str | None = None
    turn_password: str | None = None


class ZigbeeConfig(_Strict):
    """A Zigbee coordinator on this board, run by a local zigbee2mqtt (see deploy/zigbee/)."""

    base_topic: str = Field("zigbee2mqtt", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class Profile(_Strict):
    """A file in `firmware_configs/profiles/`: one gateway board."""

    description: str = Field("", max_length=200)
    gpio: list[int] = Field(min_length=1, description="BCM GPIOs on the header")
    reserved: dict[int, str] = Field(default_factory=dict, description="GPIO → what uses it")
    adc: AdcConfig | None = None
    serial_ports: list[str] = Field(default_factory=list)
    local_alarm: LocalAlarmConfig | None = None
    zigbee: ZigbeeConfig | None = None
    audio: AudioConfig | None = None

    @model_validator(mode="after")
    def _reserved_exist(self) -> Profile:
        for pin in self.reserved:
            if pin not in self.gpio:
                raise ValueError(f"reserved GPIO{pin} is not in gpio")
        if self.adc is not None:
            for pin in self.adc.pins():
                if pin not in self.gpio:
                    raise ValueError(f"adc: SPI pin GPIO{pin} is not in gpio")
        if self.local_alarm is not None:
            if self.local_alarm.buzzer == self.local_alarm.led:
                raise ValueError("local_alarm: led and buzzer are the same GPIO")
            for pin, what in self.local_alarm.pins().items():
                if pin not in self.gpio:
                    raise ValueError(f"local_alarm: GPIO{pin} is not in gpio")
                if pin in self.reserved or (self.adc is not None and pin in self.adc.pins()):
                    raise ValueError(f"local_alarm: GPIO{pin} ({what}) is reserved")
        return self

    def reserved_pins(self) -> dict[int, str]:
        """Every GPIO a device may not use: the listed ones, the ADC's SPI bus, the local
        alarm's LED and buzzer."""
        pins = dict(self.reserved)
        if self.adc is not None:
            for pin, what in self.adc.pins().items():
                pins.setdefault(pin, what)
        if self.local_alarm is not None:
            for pin, what in self.local_alarm.pins().items():
                pins.setdefault(pin, what)
        return pins


def load_profile(path: Path) -> Profile:
    """Read one board profile file (errors name the file and the field)."""
    return load_yaml_model(path, Profile)
