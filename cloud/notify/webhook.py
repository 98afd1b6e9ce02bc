"""An outbound webhook: the notification as JSON, POSTed to a URL (an SMS or voice gateway,
a paging service). Signed with HMAC-SHA256 when a secret is set; the `Idempotency-Key`
header lets the receiver drop a notification sent twice (after a restart mid-delivery)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from cloud.notify.base import Delivery, Notification


class WebhookChannel:
    name = "webhook"
    once_only = False  # the receiver drops a repeat by its Idempotency-Key

    def __init__(self, url: str, *, secret: str | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.secret = secret.encode() if secret else None
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, notification: Notification) -> Delivery:
        body = json.dumps(notification.payload(), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": notification.key}
        if self.secret is not None:
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-SC-Signature"] = f"sha256={digest}"
        try:
            resp = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Delivery(False, f"{type(exc).__name__}: {exc}"[:300], retry=True)
        if resp.is_success:
            return Delivery(True, f"HTTP {resp.status_code}")
        retry = resp.status_code >= 500 or resp.status_code in (408, 429)
        return Delivery(False, f"HTTP {resp.status_code}: {resp.text[:200]}", retry=retry)

    async def close(self) -> None:
        await self.client.aclose()
