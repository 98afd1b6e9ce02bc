"""What the agent is told (its timings, the outbox's budget, where configurations live) and
what it counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.drivers.zigbee import ZigbeeBroker
from gateway.uplink_settings import UplinkOptions


@dataclass(frozen=True)
class AgentOptions:
    heartbeat_s: float = 60.0
    telemetry_period_s: float = 5.0
    uplink: UplinkOptions = field(default_factory=UplinkOptions)
    #: the outbox's disk budget (telemetry is thinned oldest first beyond it)
    outbox_budget_bytes: int | None = 64 * 1024 * 1024
    #: the local broker of zigbee2mqtt (needed when the gateway has Zigbee devices)
    zigbee: ZigbeeBroker | None = None
    #: where pushed configurations are kept (default: `config/` beside the outbox)
    config_dir: Path | None = None
    #: the firmware_configs/ folder pushed configurations take their files from
    configs_dir: Path | None = None


@dataclass
class AgentStats:
    events: int = 0
    telemetry_batches: int = 0
    readings: int = 0
    rejected: int = 0  # observations that did not fit the contract (logged, not sent)
    commands: int = 0
    clock_steps: int = 0  # events whose time was held because the wall clock stepped back
    held_in_memory: int = 0  # events the outbox refused (a full disk), kept until it takes them
    telemetry_dropped: int = 0  # batches the outbox refused (a full disk)
    configs_applied: int = 0
    configs_refused: int = 0
