"""Keeping the gateways in step with the registry: a device bound, moved, replaced or removed
on the site page reaches its gateway as `cmd/config` (the document format of issue 3's config
push and of the provisioning bundle), and the gateway's `reply` says whether it took it.

Only gateways whose entry changed are sent a document. The gateway validates it before
anything changes (a refusal names the problem and keeps the running config); either answer
is kept here per gateway and written to the audit. A push that cannot be sent because the
broker is unreachable is recorded as not sent; the next change sends the whole entry again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from cloud.access.audit import Audit
from cloud.access.provisioning import BundleError, config_document
from cloud.site.store import SiteVersion
from contract.models import Command, Reply, utc_now
from contract.site import GatewaySpec, Site

log = logging.getLogger(__name__)

Send = Callable[[str, str, Command], Awaitable[bool]]


class ConfigPushState(BaseModel):
    """The last configuration sent to one gateway and what the gateway answered."""

    gateway: str
    command_id: str
    site_version: int
    sent: bool = Field(description="False if the broker could not be reached")
    sent_at: datetime
    applied: bool | None = Field(None, description="None until the gateway answers")
    answered_at: datetime | None = None
    detail: str = ""


class ConfigPush:
    def __init__(self, site: Site, send: Send, audit: Audit) -> None:
        self._send = send
        self._audit = audit
        self._specs: dict[str, GatewaySpec] = {gw.id: gw for gw in site.gateways}
        self._state: dict[str, ConfigPushState] = {}
        self._by_command: dict[str, str] = {}  # command id → gateway

    async def on_site(self, site: Site, version: SiteVersion) -> None:
        """A new site version is in force: send each changed gateway its new entry."""
        changed = [gw for gw in site.gateways if gw.devices and self._specs.get(gw.id) != gw]
        self._specs = {gw.id: gw for gw in site.gateways}
        for spec in changed:
            await self._push(site, spec.id, version.version)

    def follow(self, site: Site) -> None:
        """A site another process put in force (and pushed to its gateways): the entries the
        next change here is compared with."""
        self._specs = {gw.id: gw for gw in site.gateways}

    async def _push(self, site: Site, gateway: str, version: int) -> None:
        try:
            document = await asyncio.to_thread(
                config_document, site, gateway, version=f"site-v{version}"
            )
        except (BundleError, KeyError) as exc:
            log.error("no config for %s at site version %d: %s", gateway, version, exc)
            return
        command = Command(
            id=f"cfg-{gateway}-v{version}-{uuid.uuid4().hex[:8]}", ts=utc_now(), document=document
        )
        sent = await self._send(gateway, "config", command)
        self._state[gateway] = ConfigPushState(
            gateway=gateway,
            command_id=command.id,
            site_version=version,
            sent=sent,
            sent_at=datetime.now(UTC),
        )
        self._by_command[command.id] = gateway
        what = "sent" if sent else "NOT sent (broker unreachable)"
        await self._audit.record("system", "config.push", f"{gateway} site v{version}: {what}")
        if not sent:
            log.warning(
                "config for %s (site v%d) not sent: the broker is unreachable", gateway, version
            )

    async def on_reply(self, reply: Reply) -> None:
        """A gateway's answer; only answers to our config pushes concern us."""
        gateway = self._by_command.pop(reply.id, None)
        if gateway is None or gateway != reply.gateway:
            return
        state = self._state.get(gateway)
        if state is None or state.command_id != reply.id:
            return  # an answer to an older push, overtaken by a newer one
        self._state[gateway] = state.model_copy(
            update={
                "applied": reply.ok,
                "answered_at": datetime.now(UTC),
                "detail": reply.detail,
            }
        )
        verdict = "applied" if reply.ok else "REFUSED"
        await self._audit.record(
            "system",
            "config.reply",
            f"{gateway} site v{state.site_version} {verdict}: {reply.detail}",
        )
        if not reply.ok:
            log.error("gateway %s refused its config: %s", gateway, reply.detail)

    def states(self) -> list[ConfigPushState]:
        return sorted(self._state.values(), key=lambda s: s.gateway)
