"""The message contract shared by the gateway and the cloud (see docs/protocol.md)."""

from contract.models import (
    VERSION,
    Command,
    Event,
    EventType,
    GatewayState,
    Kind,
    Reading,
    Reply,
    Status,
    Telemetry,
    Values,
    decode,
    encode,
    utc_now,
)

__all__ = [
    "VERSION",
    "Command",
    "Event",
    "EventType",
    "GatewayState",
    "Kind",
    "Reading",
    "Reply",
    "Status",
    "Telemetry",
    "Values",
    "decode",
    "encode",
    "utc_now",
]
