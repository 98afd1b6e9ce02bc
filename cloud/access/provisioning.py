"""The bundle a claimed gateway receives (`contract.provisioning.ProvisioningBundle`).

Built from the registry as it is at the moment of the claim (never cached) and from the
device model files the gateway's devices use:

- `config`: the document `cmd/config` carries (gateway/config_store.py): the gateway's site
  entry (building, profile, devices with homes and pins) with its device models inline, so the
  gateway validates it exactly as a pushed config and runs it from its state folder;
- `site`: a site file holding only the gateway's street → community → grid → building (its
  homes by id and name) and the gateway entry, for `SC_GW_SITE` and `python -m gateway check`.
  Residents, their contacts and the grid worker are left out: a gateway never needs them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import yaml

from cloud.access.credentials import IssuedCredential
from cloud.errors import Conflict
from cloud.settings import CloudSettings
from contract.catalogue import Catalogue
from contract.provisioning import BrokerAccess, ProvisioningBundle
from contract.site import Building, Community, Grid, Home, Site


class BundleError(Conflict):
    """The bundle cannot be made (gateway gone from the registry, a model file missing)."""


def gateway_site(site: Site, gateway_id: str) -> Site:
    """A site file with only this gateway's building chain and entry, no personal data."""
    spec = site.gateway(gateway_id)  # KeyError if gone
    for community in site.communities:
        for grid in community.grids:
            for building in grid.buildings:
                if building.id != spec.building:
                    continue
                homes = [Home(id=h.id, name=h.name) for h in building.homes]
                only = Building(
                    id=building.id, name=building.name, address=building.address, homes=homes
                )
                return Site(
                    street=site.street,
                    communities=[
                        Community(
                            id=community.id,
                            name=community.name,
                            grids=[Grid(id=grid.id, name=grid.name, buildings=[only])],
                        )
                    ],
                    gateways=[spec],
                )
    raise KeyError(f"building {spec.building!r} of gateway {gateway_id} is not in the site")


def config_document(site: Site, gateway_id: str, *, version: str) -> str:
    """The `cmd/config` document of the gateway, with the models its devices use inline (read
    from the device model files shipped with the cloud's code)."""
    spec = site.gateway(gateway_id)
    models: dict[str, Any] = {}
    for device in spec.devices:
        if device.model in models:
            continue
        path = Catalogue().model_path(device.model)
        try:
            models[device.model] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BundleError(f"device model {device.model!r}: cannot read {path}") from exc
    data: dict[str, Any] = {"version": version}
    data |= spec.model_dump(mode="json", exclude_defaults=True)
    data["models"] = models
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _documents(site: Site, gateway_id: str, version: str) -> tuple[str, str]:
    try:
        only = gateway_site(site, gateway_id)
        config = config_document(site, gateway_id, version=version)
    except KeyError:
        raise BundleError(f"gateway {gateway_id!r} is not in the registry") from None
    text = yaml.safe_dump(only.model_dump(mode="json", exclude_defaults=True), allow_unicode=True)
    return config, text


@dataclass(frozen=True)
class Prepared:
    """Everything of a bundle but the credential: made first, so a claim that cannot be
    served does not rotate the gateway's credential for nothing."""

    gateway: str
    street: str
    config: str
    site: str
    host: str
    port: int
    ca_pem: str | None
    nodes: tuple[str, ...] = ()
    command_qos: Literal[0, 1] = 1

    def bundle(self, credential: IssuedCredential) -> ProvisioningBundle:
        assert credential.gateway == self.gateway
        return ProvisioningBundle(
            gateway=self.gateway,
            street=self.street,
            issued_at=credential.issued_at,
            broker=BrokerAccess(
                host=self.host,
                port=self.port,
                username=credential.username,
                password=credential.password,
                ca_pem=self.ca_pem,
                nodes=list(self.nodes),
                command_qos=self.command_qos,
            ),
            config=self.config,
            site=self.site,
        )


def _check_broker_access(settings: CloudSettings) -> None:
    """In production a bundle must point the gateway at the broker's real address, over TLS:
    the cloud's own MQTT address is usually loopback, which no gateway can reach, and a
    password sent in the clear on a building's network is a password given away."""
    if settings.environment != "production":
        return
    hosts: list[str | None] = [n.rpartition(":")[0] for n in settings.gateway_mqtt_nodes]
    hosts = hosts or [settings.gateway_mqtt_host]
    for host in hosts:
        if host is None or host in {"localhost", "::1"} or host.startswith("127."):
            raise BundleError(
                "SC_CLOUD_GATEWAY_MQTT_HOST must name the broker as the gateways reach it (so must"
                f" every SC_CLOUD_GATEWAY_MQTT_NODES; it is {host!r}): no bundle is issued until"
                " it does"
            )
    if settings.gateway_mqtt_ca_file is None:
        raise BundleError(
            "SC_CLOUD_GATEWAY_MQTT_CA_FILE is not set: in production gateways connect over "
            "TLS (port 8883), so a bundle carries the CA they must trust"
        )


async def prepare(settings: CloudSettings, site: Site, gateway: str) -> Prepared:
    """The bundle's documents for the gateway as the registry has it now; BundleError if not
    possible."""
    _check_broker_access(settings)
    version = f"claim-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    config, site_text = await asyncio.to_thread(_documents, site, gateway, version)
    ca_pem: str | None = None
    if settings.gateway_mqtt_ca_file is not None:
        try:
            ca_pem = await asyncio.to_thread(
                settings.gateway_mqtt_ca_file.read_text, encoding="ascii"
            )
        except OSError as exc:
            raise BundleError(
                f"cannot read SC_CLOUD_GATEWAY_MQTT_CA_FILE {settings.gateway_mqtt_ca_file}"
            ) from exc
    nodes = settings.gateway_mqtt_nodes
    if nodes:
        first, _, first_port = nodes[0].rpartition(":")
        host, port = first, int(first_port)
    else:
        host = settings.gateway_mqtt_host or settings.mqtt_host
        port = settings.gateway_mqtt_port or settings.mqtt_port
    return Prepared(
        gateway=gateway,
        street=site.street.id,
        config=config,
        site=site_text,
        host=host,
        port=port,
        ca_pem=ca_pem,
        nodes=tuple(nodes),
        # a RabbitMQ 3.10 cluster ties a QoS 1 subscription to one node (docs/cluster.md)
        command_qos=0 if settings.broker == "rabbitmq" else 1,
    )
