"""The gateway accounts of a RabbitMQ cluster (the cluster shape, docs/cluster.md), kept in step
with the gateway credentials through RabbitMQ's management HTTP API — what
cloud/access/broker_accounts.py does with Mosquitto's files.

Every gateway account carries the user tag `sc-gateway`, so the cloud changes only its own
accounts (never `cloud`, an administrator's or another program's). On every change the whole
set is made to match the registry: an account is created (or its password hash replaced) with
RabbitMQ's own hash of the password (`rabbit_password_hashing_sha256`, kept beside Mosquitto's
when the credential is issued: the password itself is never stored), its permissions — its own
MQTT subscription queues, publishing to and reading from `amq.topic` — and its topic
permissions on `amq.topic`: it publishes only its own status, event, telemetry and reply and
reads only its own commands (the MQTT plugin turns `/` into `.`); an account the registry no
longer has is deleted. A rotated or revoked gateway's connections are closed.

Users are cluster-wide in RabbitMQ: one node's API changes every node. The API of each node is
tried in turn (`SC_CLOUD_RABBITMQ_MANAGEMENT_URLS`), so one node down changes nothing. The
cloud's account needs the `administrator` tag for this.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from cloud.access.credentials import BrokerAccount, BrokerNotUpdated

log = logging.getLogger(__name__)

#: The user tag of the accounts this module owns.
GATEWAY_TAG = "sc-gateway"
HASHING = "rabbit_password_hashing_sha256"
VHOST = "/"


def gateway_permissions(gateway: str) -> tuple[str, str, str]:
    """configure, write, read: what RabbitMQ's MQTT plugin does for a gateway (its own
    subscription queues, publishing to and binding from amq.topic)."""
    own = rf"mqtt-subscription-{re.escape(gateway)}qos[01]"
    return (f"^{own}$", rf"^(amq\.topic|{own})$", rf"^(amq\.topic|{own})$")


def gateway_topic_permissions(gateway: str) -> tuple[str, str]:
    """write, read on amq.topic (routing keys: the MQTT plugin maps `/` to `.`): a gateway
    publishes on its own status, event, telemetry and reply topics and reads its own commands,
    like the Mosquitto ACL we ship (deploy/mosquitto/acl)."""
    gw = re.escape(gateway)
    return (
        rf"^sc\.v1\.{gw}\.(status|event|telemetry|reply)$",
        rf"^sc\.v1\.{gw}\.cmd\.",
    )


class RabbitUnreachable(BrokerNotUpdated):
    """No node's management API answered, or one refused the change."""


class RabbitAccounts:
    """`BrokerAccounts` for a RabbitMQ cluster, through its management API."""

    def __init__(
        self,
        urls: Sequence[str],
        username: str,
        password: str,
        *,
        cloud_user: str = "cloud",
        timeout_s: float = 5.0,
    ) -> None:
        if not urls:
            raise ValueError("no RabbitMQ management URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.auth = (username, password)
        self.cloud_user = cloud_user
        self.timeout_s = timeout_s

    def reserved(self) -> set[str]:
        return {self.cloud_user, self.auth[0]}

    async def apply(self, accounts: list[BrokerAccount], *, cut: list[str]) -> None:
        last: Exception | None = None
        for url in self.urls:
            async with httpx.AsyncClient(
                base_url=f"{url}/api", auth=self.auth, timeout=self.timeout_s
            ) as api:
                try:
                    await self._apply(api, accounts, cut)
                    return
                except httpx.TransportError as exc:  # this node does not answer: the next one
                    log.warning("RabbitMQ management API at %s: %r", url, exc)
                    last = exc
                except httpx.HTTPStatusError as exc:
                    raise RabbitUnreachable(
                        f"RabbitMQ refused a change of the gateway accounts ({url}):"
                        f" {exc.response.status_code} {exc.response.text[:200]}"
                    ) from exc
        raise RabbitUnreachable(
            f"no RabbitMQ management API answered ({', '.join(self.urls)}): {last!r}"
        )

    async def _apply(
        self, api: httpx.AsyncClient, accounts: list[BrokerAccount], cut: list[str]
    ) -> None:
        users = await _json(api, "GET", "/users")
        ours = {u["name"]: u for u in users if GATEWAY_TAG in _tags(u)}
        vhost = quote(VHOST, safe="")
        wanted = {a.username for a in accounts if a.rabbit_hash}
        for account in accounts:
            if account.rabbit_hash is None:
                log.warning(
                    "gateway %s: its credential was issued before the cloud kept RabbitMQ's"
                    " hash; issue it again so it can log in to the cluster",
                    account.username,
                )
                continue
            name = quote(account.username, safe="")
            known = ours.get(account.username)
            if known is not None and known.get("password_hash") == account.rabbit_hash:
                continue
            await _json(
                api,
                "PUT",
                f"/users/{name}",
                {
                    "password_hash": account.rabbit_hash,
                    "hashing_algorithm": HASHING,
                    "tags": GATEWAY_TAG,
                },
            )
            configure, write, read = gateway_permissions(account.username)
            await _json(
                api,
                "PUT",
                f"/permissions/{vhost}/{name}",
                {"configure": configure, "write": write, "read": read},
            )
            topic_write, topic_read = gateway_topic_permissions(account.username)
            await _json(
                api,
                "PUT",
                f"/topic-permissions/{vhost}/{name}",
                {"exchange": "amq.topic", "write": topic_write, "read": topic_read},
            )
        for name in sorted(set(ours) - wanted):
            await _json(api, "DELETE", f"/users/{quote(name, safe='')}")
        # by user name: RabbitMQ's live tracking of connections, which sees one opened a moment
        # ago (the list of connections comes from statistics a few seconds behind)
        for name in sorted(set(cut) | (set(ours) - wanted)):
            await _json(
                api,
                "DELETE",
                f"/connections/username/{quote(name, safe='')}",
                headers={"X-Reason": "credential rotated or revoked"},
            )


def _tags(user: dict[str, Any]) -> list[str]:
    tags = user.get("tags") or []
    return tags.split(",") if isinstance(tags, str) else list(tags)


async def _json(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> Any:
    resp = await api.request(method, path, json=body, headers=headers)
    if method == "DELETE" and resp.status_code == 404:  # gone already
        return None
    resp.raise_for_status()
    return resp.json() if resp.content else None
