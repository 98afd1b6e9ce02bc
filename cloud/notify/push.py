"""The live duty-room push: a message on the hub to every open board page."""

from __future__ import annotations

from cloud.live.hub import LiveHub
from cloud.notify.base import Delivery, Notification


class PushChannel:
    name = "push"

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    async def send(self, notification: Notification) -> Delivery:
        message = {
            "type": "notify",
            "key": notification.key,
            "reason": notification.reason,
            "step": notification.step,
            "to": {"target": notification.target, "name": notification.name},
            "alarm": notification.alarm.model_dump(mode="json"),
        }
        pages = self.hub.publish(message)
        if pages == 0:
            return Delivery(False, "no duty-room page open", retry=True)
        return Delivery(True, f"{pages} page(s) open")
