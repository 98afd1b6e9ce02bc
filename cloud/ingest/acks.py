"""Telling a gateway what the cloud has committed (`cmd/ack`, docs/protocol.md "Delivery")."""

from __future__ import annotations

from collections import Counter

from cloud.ingest.delivery import AckDue
from cloud.transport.base import Transport
from contract import topics
from contract.models import Ack, encode, utc_now


def send_ack(transport: Transport | None, due: AckDue, counts: Counter[str]) -> None:
    """QoS 1, not awaited: a lost one is made good by the gateway sending again, which is
    acknowledged again. Counted as sent or unsent, and the replays asked for."""
    ack = Ack(boot=due.boot, upto=due.upto, replay=due.replay, ts=utc_now())
    if transport is None or not transport.publish_soon(
        topics.command(due.gateway, "ack"), encode(ack)
    ):
        counts["acks_unsent"] += 1
        return
    counts["acks_sent"] += 1
    if due.replay:
        counts["replays_asked"] += 1
