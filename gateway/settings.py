"""The gateway process's settings: environment (`SC_GW_…`) overridden by the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.models import GatewayId
from gateway.uplink import BrokerParams


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SC_GW_", extra="forbid")

    site: Path = Field(description="Site file (firmware_configs/sites/*.yaml)")
    gateway: GatewayId = Field(description="This gateway's id in the site file")
    configs_dir: Path | None = Field(None, description="firmware_configs/ (default: the repo's)")
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(1883, ge=1, le=65535)
    username: str | None = Field(None, description="Broker user (default: the gateway id)")
    password: SecretStr | None = None
    outbox: Path = Path("/var/lib/smart-community/outbox.sqlite3")
    simulate: bool = False
    script: Path | None = Field(None, description="Timed simulator steps (needs simulate)")
    heartbeat_s: float = Field(60.0, gt=0)
    telemetry_period_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _script_needs_simulation(self) -> GatewaySettings:
        if self.script is not None and not self.simulate:
            raise ValueError("script needs simulate (it drives the simulated devices)")
        return self

    def broker_params(self) -> BrokerParams:
        return BrokerParams(
            host=self.broker_host,
            port=self.broker_port,
            username=self.username or self.gateway,
            password=self.password.get_secret_value() if self.password else None,
        )
