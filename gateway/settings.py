"""The gateway process's settings: environment (`SC_GW_…`) overridden by the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.models import GatewayId
from edge.drivers.zigbee import ZigbeeBroker
from gateway.uplink_settings import BrokerParams


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SC_GW_", extra="forbid")

    site: Path = Field(description="Site file (firmware_configs/sites/*.yaml)")
    gateway: GatewayId = Field(description="This gateway's id in the site file")
    configs_dir: Path | None = Field(None, description="firmware_configs/ (default: the repo's)")
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(1883, ge=1, le=65535)
    broker_nodes: str | None = Field(
        None,
        description="Every node of a clustered broker, HOST:PORT,HOST:PORT,…; tried in turn"
        " (a node that fails: the next one). Set, it replaces broker_host and broker_port",
    )
    broker_command_qos: Literal[0, 1] = Field(
        1,
        description="QoS of the subscription to commands; 0 for a RabbitMQ 3.10 cluster"
        " (docs/cluster.md: its QoS 1 subscription is tied to one node)",
    )
    broker_ca_file: Path | None = Field(None, description="MQTT over TLS, trusting this CA")
    username: str | None = Field(None, description="Broker user (default: the gateway id)")
    password: SecretStr | None = None
    outbox: Path = Path("/var/lib/smart-community/outbox.sqlite3")
    outbox_budget_mb: float = Field(
        64.0, gt=0, le=100_000, description="Disk budget; beyond it telemetry is thinned"
    )
    config_dir: Path | None = Field(
        None, description="Pushed configurations (default: config/ beside the outbox)"
    )
    zigbee_host: str = Field("127.0.0.1", description="The local broker of zigbee2mqtt")
    zigbee_port: int = Field(1883, ge=1, le=65535)
    zigbee_username: str | None = "sc-gateway"
    zigbee_password: SecretStr | None = None
    simulate: bool = False
    script: Path | None = Field(None, description="Timed simulator steps (needs simulate)")
    heartbeat_s: float = Field(60.0, gt=0)
    telemetry_period_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve /metrics for Prometheus here (off without it)"
    )
    metrics_host: str = Field("127.0.0.1", description="Where /metrics listens")

    @model_validator(mode="after")
    def _script_needs_simulation(self) -> GatewaySettings:
        if self.script is not None and not self.simulate:
            raise ValueError("script needs simulate (it drives the simulated devices)")
        return self

    @field_validator("broker_nodes")
    @classmethod
    def _nodes(cls, value: str | None) -> str | None:
        if value is not None:
            parse_nodes(value)
        return value

    def zigbee_broker(self) -> ZigbeeBroker:
        return ZigbeeBroker(
            host=self.zigbee_host,
            port=self.zigbee_port,
            username=self.zigbee_username,
            password=self.zigbee_password.get_secret_value() if self.zigbee_password else None,
        )

    def state_dir(self) -> Path:
        return self.config_dir or self.outbox.parent / "config"

    def broker_params(self) -> BrokerParams:
        return BrokerParams(
            host=self.broker_host,
            port=self.broker_port,
            username=self.username or self.gateway,
            password=self.password.get_secret_value() if self.password else None,
            ca_file=self.broker_ca_file,
            nodes=parse_nodes(self.broker_nodes) if self.broker_nodes else (),
            command_qos=self.broker_command_qos,
        )


def parse_nodes(value: str) -> tuple[tuple[str, int], ...]:
    """`HOST:PORT,HOST:PORT` → ((host, port), …); anything else is refused with the reason."""
    out = []
    for item in value.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not HOST:PORT: {item.strip()!r} (in {value!r})")
        out.append((host, int(port)))
    return tuple(out)
