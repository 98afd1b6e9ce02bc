"""The wire contract: every message that crosses MQTT between a gateway and the cloud.

Both sides import these models; `docs/schema/*.json` is generated from them
(`python -m contract.schema`) and a test keeps the two in step.

Strict on purpose: unknown fields, unknown units and wrong types are rejected with a reason,
because a third-party device that gets the contract wrong must find out, not be half-read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contract.voice import VoiceReport

#: Topic tree version, the `v1` in `sc/v1/...`.
VERSION = 1
#: Newest message version. 2 adds the cloud's end-to-end acknowledgement of events
#: (`cmd/ack`): an event with `"v": 2` is kept by its gateway until the cloud says it is
#: committed. Version 1 events are still accepted (broker-level delivery only).
MESSAGE_VERSION = 2

#: Largest payload the cloud accepts on each topic kind (bytes). Bigger is rejected unread.
MAX_EVENT_BYTES = 4 * 1024
MAX_TELEMETRY_BYTES = 256 * 1024
MAX_STATUS_BYTES = 1024
#: A Reply may carry a voice call's SDP offer (contract/voice.py).
MAX_REPLY_BYTES = 16 * 1024
MAX_READINGS_PER_BATCH = 1000
#: Largest `Command.document` (characters), e.g. the YAML config pushed by `cmd/config`.
MAX_COMMAND_DOCUMENT = 64 * 1024
#: Longest outage `offline_s` can state (ten years, in seconds).
MAX_OFFLINE_S = 10 * 366 * 86400

_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

GatewayId = Annotated[str, Field(pattern=_ID_PATTERN, description="Gateway id, a-z 0-9 _ -")]
DeviceId = Annotated[str, Field(pattern=_ID_PATTERN, description="Device id, unique per gateway")]
BootId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Changes on every gateway restart; with `seq` it detects gaps",
    ),
]
EventId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.:-]{8,64}$",
        description="Globally unique; the idempotency key (a UUID is a good choice)",
    ),
]


#: Every time in a message lies in [EARLIEST, LATEST): anything else cannot be a real time
#: from a device of ours (a clock at 1970 is an unset clock, 9999 is junk).
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("time is out of range (2020-01-01 … 2099-12-31 UTC)") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"time {utc.isoformat()} is out of range (2020-01-01 … 2099-12-31 UTC)")
    return utc


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    Field(
        description="RFC 3339 time with an offset, e.g. 2026-11-22T04:15:00.123Z, "
        "between 2020-01-01 and 2099-12-31 UTC"
    ),
]


class Kind(StrEnum):
    """What family of device (or the gateway itself) an event or reading is about."""

    CALL = "call"
    SMOKE = "smoke"
    GAS = "gas"
    AIR = "air"
    WATER = "water"
    POWER = "power"
    GATEWAY = "gateway"


class EventType(StrEnum):
    """What happened."""

    PRESS = "press"  # a call button pressed (short press: a call for help)
    CANCEL = "cancel"  # the resident or carer cancelled a call at the button
    ALARM = "alarm"  # a detector went into alarm
    CLEAR = "clear"  # a detector left alarm
    TEST = "test"  # a test press / test mode; never an emergency
    FAULT = "fault"  # the device reports a fault (or fell silent)
    RESTORE = "restore"  # a fault ended: the device reports again, a fault contact closed again
    BATTERY_LOW = "battery_low"
    TAMPER = "tamper"
    HEARTBEAT = "heartbeat"


class Values(BaseModel):
    """Measured values in named units. Every field is optional; unknown names are rejected,
    and so are NaN and ±Infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ch4_pct_lel: float | None = Field(None, ge=0, le=100, description="Methane, % of LEL")
    pm1_ugm3: float | None = Field(None, ge=0, le=10000, description="PM1.0, µg/m³")
    pm25_ugm3: float | None = Field(None, ge=0, le=10000, description="PM2.5, µg/m³")
    pm10_ugm3: float | None = Field(None, ge=0, le=10000, description="PM10, µg/m³")
    co2_ppm: float | None = Field(None, ge=0, le=100000, description="CO2, ppm")
    hcho_mgm3: float | None = Field(None, ge=0, le=100, description="Formaldehyde, mg/m³")
    tvoc_mgm3: float | None = Field(None, ge=0, le=1000, description="TVOC, mg/m³")
    temp_c: float | None = Field(None, ge=-60, le=200, description="Temperature, °C")
    rh_pct: float | None = Field(None, ge=0, le=100, description="Relative humidity, %")
    battery_pct: float | None = Field(None, ge=0, le=100, description="Battery, %")
    rssi_dbm: float | None = Field(None, ge=-150, le=20, description="Radio signal, dBm")
    current_a: float | None = Field(None, ge=0, le=1000, description="Circuit current, A")
    residual_ma: float | None = Field(None, ge=0, le=10000, description="Residual current, mA")
    press_ms: float | None = Field(None, ge=0, le=600000, description="How long a button was held")
    offline_s: float | None = Field(
        None,
        ge=0,
        le=MAX_OFFLINE_S,
        description="How long the gateway's uplink (or a device) was out of contact, s",
    )

    def present(self) -> dict[str, float]:
        """The values that were sent, by unit name (in the fields' order)."""
        # what model_dump(exclude_none=True) gives, at half its cost: it is on the hot path,
        # several times per reading, and every field is a plain float or None
        return {unit: value for unit, value in self.__dict__.items() if value is not None}


class Event(BaseModel):
    """One event, published QoS 1 on `sc/v1/{gateway}/event`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1, 2] = Field(
        1,
        description="Message version: 2 = the gateway keeps the event until the cloud "
        "acknowledges it on cmd/ack (then `seq` counts 1, 2, 3, … without holes per boot)",
    )
    id: EventId
    gateway: GatewayId
    device: DeviceId
    boot: BootId
    seq: int = Field(ge=0, le=2**53, description="Monotonic within a boot")
    ts: UtcTime
    kind: Kind
    type: EventType
    values: Values = Field(default_factory=Values)
    clock_synced: bool = Field(True, description="Whether the gateway clock was synchronised")
    replayed: bool = Field(False, description="Sent again from the outbox after an outage")
    drill: int | None = Field(
        None,
        ge=1,
        le=2**53,
        description="The number of the emergency drill (应急演练) the cloud gave, when this event "
        "is one of its scripted incidents. Honoured only for a drill running now that covers the "
        "device; otherwise the event is handled as real",
    )

    @model_validator(mode="after")
    def _gateway_events_are_about_the_gateway(self) -> Event:
        if self.kind is Kind.GATEWAY and self.device != self.gateway:
            raise ValueError("kind 'gateway' events must name the gateway itself as device")
        return self


class Reading(BaseModel):
    """One sample of one device inside a telemetry batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: DeviceId
    ts: UtcTime
    kind: Kind
    values: Values

    @model_validator(mode="after")
    def _has_a_value(self) -> Reading:
        if not self.values.present():
            raise ValueError("a reading needs at least one value")
        return self


class Telemetry(BaseModel):
    """Periodic readings, batched, published on `sc/v1/{gateway}/telemetry`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: EventId
    gateway: GatewayId
    boot: BootId
    seq: int = Field(ge=0, le=2**53)
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(BaseModel):
    """Retained on `sc/v1/{gateway}/status`: `online` at connect, `offline` as the last will."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    gateway: GatewayId
    state: GatewayState
    boot: BootId
    ts: UtcTime


class Command(BaseModel):
    """Cloud to gateway on `sc/v1/{gateway}/cmd/{name}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: EventId
    ts: UtcTime
    device: DeviceId | None = None
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    document: str | None = Field(
        None,
        max_length=MAX_COMMAND_DOCUMENT,
        description="A text document the command carries, e.g. the YAML config of cmd/config",
    )


class Ack(BaseModel):
    """Cloud to gateway on `sc/v1/{gateway}/cmd/ack` (message version 2): every event of
    `boot` with `seq` ≤ `upto` is committed to the system of record (stored, or refused and
    kept with the reason), so the gateway may forget it. With `replay`, the cloud has seen
    events after `upto` but not `upto + 1`: the gateway sends again, oldest first, what it
    still holds of that boot after `upto`. Not answered (no Reply)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[2] = 2
    boot: BootId
    upto: int = Field(ge=0, le=2**53, description="Every seq up to this one is committed")
    replay: bool = Field(False, description="Send again what follows `upto`")
    ts: UtcTime


class Reply(BaseModel):
    """Gateway's answer to a command, on `sc/v1/{gateway}/reply`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: EventId = Field(description="The id of the command answered")
    gateway: GatewayId
    ok: bool
    detail: str = Field("", max_length=500)
    voice: VoiceReport | None = Field(
        None, description="A voice call's state (the answer to, and reports after, cmd/voice)"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], payload: bytes | str) -> M:
    """Read a message off the wire, strictly: JSON types must be the contract's own ("5" is
    not a number, 1763784900 is not a time, "yes" is not a boolean) and no object may name a
    key twice (`{"gateway": "a", "gateway": "b"}` is refused, not read as "b").
    Raises ValidationError."""
    _refuse_duplicate_keys(model, payload)
    return model.model_validate_json(payload, strict=True)


def _refuse_duplicate_keys(model: type[BaseModel], payload: bytes | str) -> None:
    try:
        _PAIRS.decode(payload.decode() if isinstance(payload, bytes) else payload)
    except _DuplicateKey as dup:
        raise ValidationError.from_exception_data(
            model.__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "duplicate_key",
                        "the key '{key}' appears more than once in one JSON object",
                        {"key": dup.key},
                    ),
                    loc=(dup.key,),
                    input=dup.key,
                )
            ],
        ) from None
    except (ValueError, RecursionError):
        pass  # not JSON (or absurdly deep): the model's own parser says why


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


#: One decoder for the duplicate-key check (`json.loads` with a hook builds one per call).
_PAIRS = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def encode(message: BaseModel) -> bytes:
    """The bytes put on the wire: compact JSON, absent values left out."""
    return message.model_dump_json(exclude_none=True).encode("utf-8")
