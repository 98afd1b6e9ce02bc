"""Notification channels behind one small interface (`Channel.send`): the live duty-room
push and an outbound webhook (for SMS or voice gateways)."""

from cloud.notify.base import Channel, Delivery, Notification
from cloud.notify.push import PushChannel
from cloud.notify.webhook import WebhookChannel

__all__ = ["Channel", "Delivery", "Notification", "PushChannel", "WebhookChannel"]
