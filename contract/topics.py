"""Topic names under the versioned root `sc/v1/{gateway_id}/`: building and parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "sc/v1"

_GATEWAY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CMD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Channel(StrEnum):
    STATUS = "status"
    EVENT = "event"
    TELEMETRY = "telemetry"
    CMD = "cmd"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class Topic:
    gateway: str
    channel: Channel
    command: str | None = None  # only for Channel.CMD

    def __str__(self) -> str:
        base = f"{ROOT}/{self.gateway}/{self.channel}"
        return f"{base}/{self.command}" if self.command else base


class TopicError(ValueError):
    """The topic is not one of the contract's."""


def status(gateway: str) -> str:
    return str(Topic(gateway, Channel.STATUS))


def event(gateway: str) -> str:
    return str(Topic(gateway, Channel.EVENT))


def telemetry(gateway: str) -> str:
    return str(Topic(gateway, Channel.TELEMETRY))


def reply(gateway: str) -> str:
    return str(Topic(gateway, Channel.REPLY))


def command(gateway: str, name: str) -> str:
    if not _CMD_NAME.match(name):
        raise TopicError(f"bad command name {name!r}")
    return str(Topic(gateway, Channel.CMD, name))


def subscription(channel: Channel, gateway: str = "+") -> str:
    """Filter for one channel of one gateway or (default) of all gateways."""
    suffix = "/+" if channel is Channel.CMD else ""
    return f"{ROOT}/{gateway}/{channel}{suffix}"


def parse(topic: str) -> Topic:
    """Split a topic into gateway and channel, or raise TopicError saying why not."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise TopicError(f"topic {topic!r} is not under {ROOT}/{{gateway}}/")
    gateway, channel_name, rest = parts[2], parts[3], parts[4:]
    if not _GATEWAY.match(gateway):
        raise TopicError(f"bad gateway id in topic {topic!r}")
    try:
        channel = Channel(channel_name)
    except ValueError:
        raise TopicError(f"unknown channel {channel_name!r} in topic {topic!r}") from None
    if channel is Channel.CMD:
        if len(rest) != 1 or not _CMD_NAME.match(rest[0]):
            raise TopicError(f"bad command topic {topic!r}")
        return Topic(gateway, channel, rest[0])
    if rest:
        raise TopicError(f"unexpected levels after {channel} in topic {topic!r}")
    return Topic(gateway, channel)
