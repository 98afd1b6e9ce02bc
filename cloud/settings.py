"""Settings of the cloud process (pydantic-settings; environment prefix `SC_CLOUD_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SITE = REPO / "firmware_configs" / "sites" / "demo.yaml"
DEFAULT_RULES = REPO / "firmware_configs" / "rules" / "default.yaml"
_PLACEHOLDER = "change-me"


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SC_CLOUD_", env_nested_delimiter="__")

    environment: str = Field("development", pattern=r"^(development|production)$")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str | None = "cloud"
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = "sc-cloud-ingest"
    # A broker that is missing (at start-up too) or goes away is tried again after
    # mqtt_retry_min_s, doubling up to mqtt_retry_max_s (jittered); the web app keeps serving.
    mqtt_retry_min_s: float = Field(1.0, gt=0, le=60)
    mqtt_retry_max_s: float = Field(30.0, gt=0, le=600)

    database: Path = Field(Path("var/cloud.db"), description="Alarms, events, audit (SQLite)")
    telemetry_url: str = Field(
        "sqlite:///var/telemetry.db", description="sqlite:///FILE or influx://HOST:PORT/DB"
    )
    site_file: Path = Field(
        DEFAULT_SITE,
        description="Seeds the site registry on the first start only (the database's"
        " newest version is in force after that; docs/site-registry.md)",
    )
    rules_file: Path = DEFAULT_RULES

    web_host: str = "127.0.0.1"
    web_port: int = Field(8000, ge=0, le=65535)
    session_secret: SecretStr = SecretStr(_PLACEHOLDER)
    session_max_age_s: int = Field(12 * 3600, ge=60)
    # name → (role, password); the demo and tests create users from here at start-up.
    bootstrap_users: dict[str, tuple[str, SecretStr]] = Field(default_factory=dict)

    telemetry_flush_s: float = Field(0.2, gt=0, le=10)
    tick_s: float = Field(1.0, gt=0, le=60, description="How often time-driven rules run")

    # The outbound webhook channel (e.g. an SMS or voice gateway); off when no URL is set.
    webhook_url: str | None = Field(None, pattern=r"^https?://")
    webhook_secret: SecretStr | None = Field(None, description="Signs each POST (HMAC-SHA256)")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    keep_rejected: int = Field(10000, ge=100, description="Rejected messages kept for inspection")

    # TLS (issue 6): to the broker, and for the web app / API itself.
    mqtt_tls_ca_file: Path | None = Field(None, description="CA to trust for MQTT over TLS")
    web_tls_cert_file: Path | None = Field(None, description="Serve HTTPS with this certificate")
    web_tls_key_file: Path | None = None

    # The broker's account files the cloud keeps in step with the registry (Mosquitto).
    broker_passwd_file: Path | None = Field(None, description="Mosquitto password_file to write")
    broker_acl_file: Path | None = Field(None, description="Mosquitto acl_file to write")
    broker_pid_file: Path | None = Field(None, description="Mosquitto's pid, signalled to reload")
    broker_service_passwd_file: Path | None = Field(
        None, description="Service accounts (mosquitto_passwd) merged into broker_passwd_file"
    )

    # Provisioning (issue 6): what a claimed gateway is told, and how long a claim code lives.
    gateway_mqtt_host: str | None = Field(None, description="Broker address for gateways")
    gateway_mqtt_port: int | None = Field(None, ge=1, le=65535)
    gateway_mqtt_ca_file: Path | None = Field(None, description="CA the gateways must trust")
    claim_code_ttl_s: int = Field(15 * 60, ge=60, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> CloudSettings:
        if self.environment == "production":
            if self.session_secret.get_secret_value() == _PLACEHOLDER:
                raise ValueError("SC_CLOUD_SESSION_SECRET must be set in production")
            if self.mqtt_password is None:
                raise ValueError("SC_CLOUD_MQTT_PASSWORD must be set in production")
        return self

    @model_validator(mode="after")
    def _retry_bounds_in_order(self) -> CloudSettings:
        if self.mqtt_retry_min_s > self.mqtt_retry_max_s:
            raise ValueError("SC_CLOUD_MQTT_RETRY_MIN_S is above SC_CLOUD_MQTT_RETRY_MAX_S")
        return self

    @model_validator(mode="after")
    def _tls_key_needs_its_certificate(self) -> CloudSettings:
        if self.web_tls_key_file is not None and self.web_tls_cert_file is None:
            raise ValueError("SC_CLOUD_WEB_TLS_KEY_FILE is set without SC_CLOUD_WEB_TLS_CERT_FILE")
        return self
