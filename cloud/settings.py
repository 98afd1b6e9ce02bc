"""Settings of the cloud process (pydantic-settings; environment prefix `SC_CLOUD_`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SITE = REPO / "firmware_configs" / "sites" / "demo.yaml"
DEFAULT_RULES = REPO / "firmware_configs" / "rules" / "default.yaml"
_PLACEHOLDER = "change-me"


class AliyunSettings(BaseModel):
    """Aliyun SMS (SendSms) and voice (SingleCallByTts); either is on once its template is set."""

    model_config = ConfigDict(extra="forbid")
    access_key_id: str = Field(min_length=1)
    access_key_secret: SecretStr
    sms_endpoint: str = Field("https://dysmsapi.aliyuncs.com/", pattern=r"^https?://")
    sms_sign_name: str | None = None
    sms_template_code: str | None = Field(None, description="${level} ${what} ${where} ${link}")
    voice_endpoint: str = Field("https://dyvmsapi.aliyuncs.com/", pattern=r"^https?://")
    voice_tts_code: str | None = Field(None, description="TTS template: ${level} ${what} ${where}")
    voice_show_number: str | None = Field(None, description="CalledShowNumber (a number you own)")


class TencentSettings(BaseModel):
    """Tencent Cloud SMS (SendSms) and voice (SendTtsVoice); either is on once its app is set."""

    model_config = ConfigDict(extra="forbid")
    secret_id: str = Field(min_length=1)
    secret_key: SecretStr
    region: str = "ap-guangzhou"
    sms_endpoint: str = Field("https://sms.tencentcloudapi.com/", pattern=r"^https?://")
    sms_app_id: str | None = Field(None, description="SmsSdkAppId")
    sms_sign_name: str | None = None
    sms_template_id: str | None = Field(None, description="{1}=level {2}=what {3}=where {4}=link")
    voice_endpoint: str = Field("https://vms.tencentcloudapi.com/", pattern=r"^https?://")
    voice_app_id: str | None = Field(None, description="VoiceSdkAppid")
    voice_template_id: str | None = Field(None, description="{1}=level {2}=what {3}=where")


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SC_CLOUD_", env_nested_delimiter="__")

    environment: str = Field("development", pattern=r"^(development|production)$")

    broker: Literal["mqtt", "rabbitmq"] = Field(
        "mqtt",
        description="mqtt: the single box (one MQTT broker: Mosquitto or the embedded one);"
        " rabbitmq: the cluster shape, consuming over AMQP from a RabbitMQ cluster"
        " (docs/cluster.md)",
    )
    amqp_nodes: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:5672"],
        description="The cluster's nodes, HOST:PORT of AMQP each; the cloud uses one and moves"
        " to the next when it fails (broker=rabbitmq)",
    )
    amqp_username: str = "cloud"
    amqp_password: SecretStr | None = None
    amqp_heartbeat_s: int = Field(
        5, ge=1, le=60, description="AMQP heartbeat: a dead node is noticed in ~2x this"
    )
    amqp_queue: str = Field(
        "sc.ingest", pattern=r"^[a-z0-9_.-]{1,200}$", description="The quorum queue consumed"
    )
    ingest_shards: int = Field(
        1,
        ge=1,
        le=256,
        description="Queues the gateways' messages are spread over by gateway (broker=rabbitmq):"
        " every cloud process on the same PostgreSQL consumes a share of them; fix it before"
        " the first start (changing it needs the old queues drained: docs/cluster.md)",
    )
    rabbitmq_management_urls: list[str] = Field(
        default_factory=list,
        description="The cluster's management APIs (http://HOST:15672 of each node): the cloud"
        " keeps the gateway accounts there in step with the registry, as the AMQP account"
        " (which needs the administrator tag); empty: accounts are made by hand",
    )

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str | None = "cloud"
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = "sc-cloud-ingest"
    # A broker that is missing (at start-up too) or goes away is tried again after
    # mqtt_retry_min_s, doubling up to mqtt_retry_max_s (jittered); the web app keeps serving.
    mqtt_retry_min_s: float = Field(1.0, gt=0, le=60)
    mqtt_retry_max_s: float = Field(30.0, gt=0, le=600)

    database: str = Field(
        "var/cloud.db",
        description="The system of record: a SQLite file (a path or sqlite:///path), or"
        " postgresql://user:password@host:port/db (docs/deploy.md, 'Which database')",
    )
    telemetry_url: str = Field(
        "sqlite:///var/telemetry.db", description="sqlite:///FILE or influx://HOST:PORT/DB"
    )
    telemetry_raw_days: float = Field(
        7, gt=0, description="Raw readings kept this many days (SQLite; InfluxDB's raw policy)"
    )
    telemetry_minute_days: float = Field(
        31, gt=0, description="1-minute means, minima and maxima kept this many days"
    )
    telemetry_hour_days: float = Field(
        400, gt=0, description="1-hour means, minima and maxima kept this many days (≥ a year)"
    )
    telemetry_batch_ids_days: float = Field(
        2,
        gt=0,
        description="A telemetry batch's id is remembered this long, so a resent batch is"
        " stored once (a gateway resends only a batch whose PUBACK it missed, within minutes)",
    )
    site_file: Path = Field(
        DEFAULT_SITE,
        description="Seeds the site registry on the first start only (the database's"
        " newest version is in force after that; docs/site-registry.md)",
    )
    rules_file: Path = DEFAULT_RULES
    #: one-key voice: the STUN/TURN servers the duty room's browsers use (docs/voice.md),
    #: e.g. ["turn:turn.example.org:3478?transport=udp"]; none on a LAN
    voice_ice_servers: list[str] = Field(default_factory=list)
    voice_turn_username: str | None = None
    voice_turn_password: SecretStr | None = None

    web_host: str = "127.0.0.1"
    web_port: int = Field(8000, ge=0, le=65535)
    session_secret: SecretStr = SecretStr(_PLACEHOLDER)
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus sends to GET /metrics; without one the"
        " endpoint is off (docs/operations.md)",
    )
    session_max_age_s: int = Field(12 * 3600, ge=60)
    web_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) besides the one a request is addressed to"
        " whose pages may send state-changing requests: the public address behind a reverse"
        " proxy that rewrites Host (docs/security.md, cross-origin requests)",
    )
    web_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto are believed; empty: none (the TCP peer is the client)",
    )
    web_behind_https: bool = Field(
        False,
        description="The public address is HTTPS (a TLS-terminating proxy): send HSTS in"
        " production as when the app serves HTTPS itself",
    )
    # name → (role, password or its scrypt hash as cloud.access.passwords makes it); accounts
    # created at start-up when they do not exist yet (the demo's and tests' users).
    bootstrap_users: dict[str, tuple[str, SecretStr]] = Field(default_factory=dict)
    simulator: bool = Field(
        False,
        description="Serve the demo's simulator panel (/api/sim: press a call button, trip a"
        " detector, cut a gateway's link): the demo only; refused in production",
    )

    telemetry_flush_s: float = Field(0.2, gt=0, le=10)
    ingest_max_batch: int = Field(
        2000,
        ge=1,
        le=10000,
        description="At most this many messages in one group commit (what is waiting when"
        " ingest takes a batch; at the design load a batch is a message or two). Each batch"
        " has a fixed cost (the commit, each alarm it touches written, read back and pushed"
        " once): 2000 drained a backlog ~30 % faster than 500 (docs/benchmarks.md)",
    )
    tick_s: float = Field(1.0, gt=0, le=60, description="How often time-driven rules run")
    checkin_sweep_s: float = Field(
        30.0, gt=0, le=3600, description="How often the daily check-ins are looked at"
    )

    # The outbound webhook channel (e.g. an SMS or voice gateway); off when no URL is set.
    webhook_url: str | None = Field(None, pattern=r"^https?://")
    webhook_secret: SecretStr | None = Field(None, description="Signs each POST (HMAC-SHA256)")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)

    # The vendor channels (docs/notifications.md); each is off until its settings are given.
    case_url: str = Field(
        "",
        description="The case in the web app, put in every message: `{id}` is the alarm's id"
        " (e.g. https://duty.example.cn/?alarm={id}); empty: no link",
    )
    notify_timeout_s: float = Field(
        4.0, gt=0, le=60, description="Each vendor request's timeout (SMS, voice, robots)"
    )
    aliyun: AliyunSettings | None = None
    tencent: TencentSettings | None = None
    wecom_url: SecretStr | None = Field(
        None, description="WeCom group robot webhook, …/cgi-bin/webhook/send?key=KEY"
    )
    dingtalk_url: SecretStr | None = Field(
        None, description="DingTalk robot webhook, …/robot/send?access_token=TOKEN"
    )
    dingtalk_secret: SecretStr | None = Field(None, description="The robot's SEC… signing secret")
    feishu_url: SecretStr | None = Field(
        None, description="Feishu bot webhook, …/open-apis/bot/v2/hook/TOKEN"
    )
    feishu_secret: SecretStr | None = Field(None, description="The bot's signing secret")
    receipt_token: SecretStr | None = Field(
        None,
        description="The secret path part of the call-result receipt URLs given to the vendors"
        " (POST /api/receipts/{vendor}/{token}); no token: receipts are refused",
    )
    keep_rejected: int = Field(10000, ge=100, description="Rejected messages kept for inspection")
    keep_rejected_per_minute: int = Field(
        100, ge=1, description="Payloads kept per gateway a minute (the rest only counted)"
    )

    # End-to-end delivery of events (cloud/ingest/delivery.py, docs/protocol.md "Delivery").
    gap_hold_s: float = Field(
        2.0, ge=0, le=60, description="Events after a gap wait this long for the missing ones"
    )
    gap_fault_s: float = Field(
        30.0, ge=1, le=86400, description="A gap still open this long is a supervision fault"
    )
    # The plausible times of an event, against the cloud's clock (docs/protocol.md).
    max_clock_ahead_s: float = Field(600, ge=0, description="An event this far ahead: refused")
    max_event_age_s: float = Field(
        30 * 86400, ge=3600, description="An event older than this: refused (if clock synced)"
    )

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
    gateway_mqtt_nodes: list[str] = Field(
        default_factory=list,
        description="A clustered broker as the gateways reach it: every node's MQTT HOST:PORT"
        " (replaces gateway_mqtt_host/port in what a claimed gateway is told)",
    )
    gateway_mqtt_ca_file: Path | None = Field(None, description="CA the gateways must trust")
    claim_code_ttl_s: int = Field(15 * 60, ge=60, le=7 * 24 * 3600)

    @field_validator("web_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        return [normal_origin(value) for value in origins]

    @field_validator("web_trusted_proxies")
    @classmethod
    def _proxies(cls, proxies: list[str]) -> list[str]:
        for value in proxies:
            try:
                ipaddress.ip_network(value)
            except ValueError:
                raise ValueError(f"not an IP address or network: {value!r}") from None
        return proxies

    @field_validator("database", mode="before")
    @classmethod
    def _path_is_a_sqlite_file(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> CloudSettings:
        if self.environment == "production":
            if self.session_secret.get_secret_value() == _PLACEHOLDER:
                raise ValueError("SC_CLOUD_SESSION_SECRET must be set in production")
            if self.broker == "mqtt" and self.mqtt_password is None:
                raise ValueError("SC_CLOUD_MQTT_PASSWORD must be set in production")
            if self.broker == "rabbitmq" and self.amqp_password is None:
                raise ValueError("SC_CLOUD_AMQP_PASSWORD must be set in production")
            if self.simulator:
                raise ValueError(
                    "SC_CLOUD_SIMULATOR is for the demo: a production cloud never injects"
                    " simulated alarms"
                )
        return self

    @field_validator("amqp_nodes")
    @classmethod
    def _nodes(cls, nodes: list[str]) -> list[str]:
        if not nodes:
            raise ValueError("at least one node (HOST:PORT)")
        for value in nodes:
            parse_node(value)
        return nodes

    @field_validator("gateway_mqtt_nodes")
    @classmethod
    def _gateway_nodes(cls, nodes: list[str]) -> list[str]:
        return [":".join(map(str, parse_node(value))) for value in nodes]

    @model_validator(mode="after")
    def _shards_need_the_cluster(self) -> CloudSettings:
        if self.ingest_shards > 1 and self.broker != "rabbitmq":
            raise ValueError(
                "SC_CLOUD_INGEST_SHARDS above 1 needs SC_CLOUD_BROKER=rabbitmq (the single"
                " box's MQTT session is one consumer)"
            )
        return self

    @model_validator(mode="after")
    def _retry_bounds_in_order(self) -> CloudSettings:
        if self.mqtt_retry_min_s > self.mqtt_retry_max_s:
            raise ValueError("SC_CLOUD_MQTT_RETRY_MIN_S is above SC_CLOUD_MQTT_RETRY_MAX_S")
        return self

    @model_validator(mode="after")
    def _robot_secrets_with_their_urls(self) -> CloudSettings:
        if self.dingtalk_url is not None and self.dingtalk_secret is None:
            raise ValueError("SC_CLOUD_DINGTALK_URL needs SC_CLOUD_DINGTALK_SECRET (signing)")
        if self.feishu_url is not None and self.feishu_secret is None:
            raise ValueError("SC_CLOUD_FEISHU_URL needs SC_CLOUD_FEISHU_SECRET (signing)")
        return self

    @model_validator(mode="after")
    def _tls_key_needs_its_certificate(self) -> CloudSettings:
        if self.web_tls_key_file is not None and self.web_tls_cert_file is None:
            raise ValueError("SC_CLOUD_WEB_TLS_KEY_FILE is set without SC_CLOUD_WEB_TLS_CERT_FILE")
        return self


def normal_origin(value: str) -> str:
    """`scheme://host[:port]` as a browser writes it in `Origin` (lower case, no default port,
    no path); anything else is refused."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an origin has no path, query or user: {value!r}")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{host}{port}"


def parse_node(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` too) → (host, port); anything else is refused with the reason."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {value!r}")
    return host, int(port)
