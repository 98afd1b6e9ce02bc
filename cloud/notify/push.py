"""The live duty-room push: a `notify` message on the hub to every open board page."""

from __future__ import annotations

from cloud.live import messages
from cloud.live.hub import LiveHub
from cloud.notify.base import Delivery, Notification


class PushChannel:
    name = "push"
    once_only = False  # a page shows it once

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    async def send(self, notification: Notification) -> Delivery:
        n = notification
        pages = self.hub.publish(
            messages.notified(n.key, n.reason, n.step, n.target, n.name, n.alarm)
        )
        if pages == 0:
            return Delivery(False, "no duty-room page open", retry=True)
        return Delivery(True, f"{pages} page(s) open")
