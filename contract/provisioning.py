"""Provisioning: what a gateway receives, once, over HTTPS when it is claimed on site.

`POST /api/provision/claim {"code": "XXXX-XXXX"}` answers with a `ProvisioningBundle`: the
gateway's own broker account (rotated on every claim), where the broker is (and the CA to
trust for it), and the gateway's configuration in the very format `cmd/config` carries (its
site entry with device models inline, see gateway/config_store.py), plus a site file that
holds only its own building's chain (homes by name, no residents) for `SC_GW_SITE`.

`python -m gateway claim` fetches and validates it; `docs/schema/provisioning-bundle.schema.json`
is generated from it (`python -m contract.schema`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.models import MAX_COMMAND_DOCUMENT, GatewayId, UtcTime

#: Claim codes: 8 characters from these 31 (no 0/O, 1/I/L), shown as XXXX-XXXX.
CLAIM_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CLAIM_CODE_LENGTH = 8
#: The largest CA bundle a bundle may carry (characters of PEM).
MAX_CA_PEM = 64 * 1024


class ClaimRequest(BaseModel):
    """What the gateway sends: the one-time code the installer was shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(
        min_length=1,
        max_length=32,
        description="XXXX-XXXX; case, spaces and dashes do not matter",
        examples=["7KQM-3XWP"],
    )


class BrokerAccess(BaseModel):
    """The gateway's own account at the cloud's MQTT broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=16, max_length=256, description="Shown once; never stored")
    ca_pem: str | None = Field(
        None,
        max_length=MAX_CA_PEM,
        description="CA certificate(s) to trust for MQTT over TLS; absent: plain MQTT",
    )
    nodes: list[Annotated[str, Field(pattern=r"^[^\s,]{1,253}:[0-9]{1,5}$")]] = Field(
        default_factory=list,
        max_length=32,
        description="A clustered broker: every node, HOST:PORT each, tried in turn (host/port"
        " is the first); empty: the one broker",
    )
    command_qos: Literal[0, 1] = Field(
        1, description="QoS of the subscription to commands (0 on a RabbitMQ cluster)"
    )


class ProvisioningBundle(BaseModel):
    """Everything a freshly claimed gateway needs to run (answer of the claim)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    gateway: GatewayId
    street: str = Field(min_length=1, max_length=64, description="The site's street id")
    issued_at: UtcTime
    broker: BrokerAccess
    config: str = Field(
        min_length=1,
        max_length=MAX_COMMAND_DOCUMENT,
        description="YAML config document, as `cmd/config` carries it (site entry, models)",
    )
    site: str = Field(
        min_length=1,
        max_length=MAX_COMMAND_DOCUMENT,
        description="YAML site file with only this gateway's building (no residents)",
    )
