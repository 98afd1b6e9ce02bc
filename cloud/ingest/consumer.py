"""Consuming from the broker: what the transport hands over goes through fair shares, then the
pipeline's group commit, then is acknowledged to the broker, then announced — with the
readings' writer and the rules' tick running beside.

    transport ─batch─▶ fair shares ─▶ Ingest.handle_many (ONE commit) ─▶ broker acks ─▶ announce
                            └─ a flooding gateway's messages: put aside, acknowledged at once

A message is acknowledged to the broker only once it is stored (or its refusal kept), so a
crash in between makes the broker deliver it again (`cloud/ingest/fair_share.py` says what a
flooding gateway's early acknowledgement costs).
"""

from __future__ import annotations

import asyncio

from cloud.ingest.pipeline import Ingest
from cloud.transport.mqtt import MqttTransport, Received


class BrokerConsumer:
    def __init__(self, ingest: Ingest, transport: MqttTransport) -> None:
        self.ingest = ingest
        self.transport = transport

    async def run(self) -> None:
        """Consume until cancelled (the transport's reconnects are its own)."""
        ingest = self.ingest
        flusher = asyncio.create_task(ingest.samples.run(), name="telemetry-flush")
        ticker = asyncio.create_task(ingest.tick_forever(), name="rules-tick")
        try:
            await self.transport.run(self.consume, wait_s=self._wait_s)
        finally:
            ticker.cancel()
            flusher.cancel()
            await asyncio.gather(flusher, ticker, return_exceptions=True)

    def _wait_s(self) -> float | None:
        """A flooding gateway's backlog is worked through at its rate: no waiting for the
        broker while some of it is due, short waits while some is left."""
        fair = self.ingest.fair
        if fair.due(self.ingest.clock()):
            return 0.0
        return 0.05 if fair.backlog else None

    async def consume(self, arrived: list[Received]) -> None:
        """One group commit of what the transport handed over (and the backlogs' due share):
        stored, then acknowledged to the broker, then announced."""
        ingest, transport, fair = self.ingest, self.transport, self.ingest.fair
        received_at = ingest.clock()
        dropped_before = fair.counts["dropped"]
        batch, put_aside = fair.schedule(arrived, ingest.max_batch, received_at)
        for item in put_aside:  # a flooding gateway's: the broker goes on delivering
            transport.ack(item)
        # received, and dropped unread (the flooding gateway's backlog is full): counted in
        ingest.count_unread(fair.counts["dropped"] - dropped_before)
        if not batch:
            return
        announce = await ingest.handle_many([(r.topic, r.payload, received_at) for r in batch])
        for item in batch:  # only once stored (or refused, recorded)
            transport.ack(item)
        await ingest.announce(announce)
