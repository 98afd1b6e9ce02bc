"""The installer's side of provisioning: one-time claim codes for registered gateways, the
gateways as an installer picks them (where, how many devices, claimed, online), revoking a
lost gateway's credential, and a gateway's claim itself — the code redeemed, the bundle made,
a new broker credential issued, all audited. Installers see homes by name, never residents.

Refusals: `NotFound`, `Conflict` (the gateway cannot be provisioned: `InvalidGateway`,
`BundleError`), `Unavailable` (the broker could not be told; the claim code stays usable),
and a refused code's `ClaimRefused` (cloud/access/claims.py) with its reason."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, Field

from cloud.access.audit import Audit
from cloud.access.claims import ClaimFailure, Claims, IssuedCode
from cloud.access.credentials import (
    BrokerNotUpdated,
    CredentialInfo,
    GatewayCredentials,
    InvalidGateway,
)
from cloud.access.provisioning import BundleError, prepare
from cloud.alarms.book import AlarmBook
from cloud.errors import NotFound, Unavailable
from cloud.settings import CloudSettings
from cloud.site.registry import Registry
from contract.provisioning import ProvisioningBundle

log = logging.getLogger(__name__)


class ClaimCode(IssuedCode):
    ttl_s: int = Field(description="Seconds the code lives from now")


class PendingInfo(BaseModel):
    created_by: str
    expires_at: datetime


class GatewayProvisioning(BaseModel):
    """A registered gateway as the installer picks it: where, how many devices, claimed?"""

    gateway: str
    building: str
    community: str
    grid: str
    devices: int
    credential: CredentialInfo | None
    pending_code: PendingInfo | None
    last_claimed_at: datetime | None
    state: str | None = Field(None, description="online / offline as last reported")
    last_seen: datetime | None = None


class Installation:
    def __init__(
        self,
        *,
        settings: CloudSettings,
        registry: Registry,
        claims: Claims,
        credentials: GatewayCredentials,
        audit: Audit,
        book: AlarmBook,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.claims = claims
        self.credentials = credentials
        self.audit = audit
        self.book = book

    async def create_code(self, gateway: str, actor: str) -> ClaimCode:
        """A one-time claim code for a registered gateway (an earlier one of it is void)."""
        if not self.registry.has_gateway(gateway):
            raise NotFound(f"no gateway {gateway!r}")
        issued = await self.claims.create(gateway, actor)
        return ClaimCode(**issued.model_dump(), ttl_s=int(self.claims.ttl_s))

    async def gateways(self) -> list[GatewayProvisioning]:
        """Every registered gateway with its place, credential, live code and last state."""
        registry = self.registry
        credentials = {c.gateway: c for c in await self.credentials.all()}
        pending = await self.claims.pending()
        claimed = await self.claims.last_claimed()
        states = {str(g["id"]): g for g in await self.book.gateways()}
        out = []
        for spec in registry.site.gateways:
            place = registry.gateway_place(spec.id)
            code = pending.get(spec.id)
            seen = states.get(spec.id)
            out.append(
                GatewayProvisioning(
                    gateway=spec.id,
                    building=place.building if place else spec.building,
                    community=place.community if place else "",
                    grid=place.grid if place else "",
                    devices=len(spec.devices),
                    credential=credentials.get(spec.id),
                    pending_code=PendingInfo(created_by=code.created_by, expires_at=code.expires_at)
                    if code
                    else None,
                    last_claimed_at=claimed.get(spec.id),
                    state=str(seen["state"]) if seen else None,
                    last_seen=seen["last_seen"] if seen else None,
                )
            )
        return out

    async def revoke(self, gateway: str, actor: str) -> CredentialInfo:
        """The gateway can no longer connect and a connected session is cut; its history and
        device bindings stay."""
        # a gateway gone from the registry may still hold a credential: that one can be revoked
        known = await self.credentials.info(gateway) is not None
        if not known and not self.registry.has_gateway(gateway):
            raise NotFound(f"no gateway {gateway!r}")
        try:
            await self.credentials.revoke(gateway, actor)  # InvalidGateway: a Conflict
        except BrokerNotUpdated as exc:
            raise Unavailable(
                f"revoked in the registry, but the broker could not be told yet: {exc}"
            ) from None
        info = await self.credentials.info(gateway)
        if info is None:
            raise NotFound(f"gateway {gateway!r} was never claimed")
        return info

    async def failures(self) -> list[ClaimFailure]:
        """Refused claim codes, newest first."""
        return await self.claims.failures()

    async def claim(self, code: str, client: str) -> ProvisioningBundle:
        """A gateway claims itself with its code: its config and a new broker password (shown
        this once; an earlier one is revoked). `ClaimRefused` for a refused code."""
        redeemed = await self.claims.redeem(code, client)
        gateway = redeemed.gateway
        actor = f"claim:{redeemed.created_by}"
        try:
            prepared = await prepare(self.settings, self.registry.site, gateway)
        except BundleError as exc:
            # nothing was issued: the code stays usable once the cause is mended
            await self.claims.release(redeemed, f"no bundle: {exc}")
            await self.audit.record(actor, "claim.failed", f"gateway={gateway}: {exc}")
            raise  # a Conflict
        try:
            credential = await self.credentials.issue(gateway, actor)
        except BrokerNotUpdated as exc:
            # the new password is recorded but the broker does not know it, and the gateway
            # will never see it: let the installer claim again with the same code once it is
            # back
            log.error("claim: broker not updated gateway=%s error=%r", gateway, str(exc))
            await self.claims.release(redeemed, f"broker not updated: {exc}")
            raise Unavailable(
                "the broker could not be updated; try the same code again in a minute"
            ) from None
        except InvalidGateway as exc:  # a Conflict
            await self.audit.record(actor, "claim.failed", f"gateway={gateway}: {exc}")
            raise
        await self.audit.record(actor, "claim.provisioned", f"gateway={gateway} client={client}")
        return prepared.bundle(credential)
