"""Consuming from the broker: what the transport hands over goes through fair shares and the
contract's checks, then the pipeline's group commit, then is acknowledged to the broker, then
announced — with the readings' writer and the rules' tick running beside.

    transport ─batch─▶ fair shares ─▶ checks ─queue─▶ Ingest.store_checked (ONE commit)
                            │                              ─▶ broker acks ─▶ announce
                            └─ a flooding gateway's messages: put aside, acknowledged at once

Two stages on the one event loop: while a batch commits (on the database's thread), the next
one is checked, so the loop's parsing and the database's writing overlap. Batches are stored
in the order they came, one at a time; one checked batch waits at most.

A message is acknowledged to the broker only once it is stored (or its refusal kept), so a
crash in between makes the broker deliver it again (`cloud/ingest/fair_share.py` says what a
flooding gateway's early acknowledgement costs). A batch whose broker session ended while it
was stored is not acknowledged on the next session: the broker delivers it again and the
event ids make the second time a no-op.
"""

from __future__ import annotations

import asyncio
import logging

from cloud.db.session_locks import SessionLocks
from cloud.ingest.check import Checked
from cloud.ingest.pipeline import Ingest
from cloud.ingest.shards import ShardOwner
from cloud.transport.base import Received, Transport
from cloud.transport.sharding import shard_of

log = logging.getLogger(__name__)


class BrokerConsumer:
    def __init__(
        self,
        ingest: Ingest,
        transport: Transport,
        *,
        shards: int = 1,
        locks: SessionLocks | None = None,
    ) -> None:
        self.ingest = ingest
        self.transport = transport
        #: the ingest shards this process holds (all of them when `locks` is None)
        self.owner = ShardOwner(shards, locks, self._hold)
        #: checked, waiting for the batch before it to be stored
        self._checked: asyncio.Queue[tuple[list[Received], list[Checked]]] = asyncio.Queue(
            maxsize=1
        )
        #: batches handed to the storing stage and not yet stored
        self._unstored = 0
        self._stored = asyncio.Condition()

    async def run(self) -> None:
        """Consume until cancelled (the transport's reconnects are its own)."""
        ingest = self.ingest
        helpers = [
            asyncio.create_task(self._store_forever(), name="ingest-store"),
            asyncio.create_task(ingest.samples.run(), name="telemetry-flush"),
            asyncio.create_task(ingest.tick_forever(), name="rules-tick"),
        ]
        if self.owner.locks is not None:
            await self.transport.hold(frozenset())  # nothing until a shard's lock says so
        owner = asyncio.create_task(self.owner.run(), name="ingest-shards")
        try:
            await self.transport.run(self.consume, wait_s=self._wait_s)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            owner.cancel()  # last: its locks go once nothing more is stored here
            await asyncio.gather(owner, return_exceptions=True)

    def _wait_s(self) -> float | None:
        """A flooding gateway's backlog is worked through at its rate: no waiting for the
        broker while some of it is due, short waits while some is left."""
        fair = self.ingest.fair
        if fair.due(self.ingest.clock()):
            return 0.0
        return 0.05 if fair.backlog else None

    async def consume(self, arrived: list[Received]) -> None:
        """Fair shares and checks of what the transport handed over (and the backlogs' due
        share); handed to the storing stage, waiting while it still has a batch waiting."""
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
        checked = ingest.checker.check_many([(r.topic, r.payload, received_at) for r in batch])
        self._unstored += 1
        await self._checked.put((batch, checked))

    async def _store_forever(self) -> None:
        """One group commit per checked batch, in order: stored, then acknowledged to the
        broker, then announced."""
        ingest, transport = self.ingest, self.transport
        while True:
            batch, checked = await self._checked.get()
            try:
                announce = await ingest.store_checked(checked)
                for item in batch:  # only once stored (or refused, recorded)
                    transport.ack(item)
                await ingest.announce(announce)
                if ingest.hold.resumed:  # after a hold: what a lost answer left untold
                    ingest.hold.resumed = False
                    await self._announce_unpushed()
            except Exception:  # store_checked never raises; announcing may, and must not stop this
                log.exception("storing a batch of %d failed", len(batch))
            finally:
                async with self._stored:
                    self._unstored -= 1
                    self._stored.notify_all()

    async def _hold(self, shards: frozenset[int]) -> None:
        """Hold these shards from now on (cloud/ingest/shards.py). Shards given up: no more
        of their messages, and those already taken stored, before the rules forget their
        gateways (the next holder reads the open alarms after that). Shards taken: their
        open alarms restored in the rules, then their queues consumed."""
        ingest, before = self.ingest, self.owner.held
        given_up, n = before - shards, self.owner.shards
        if given_up:
            await self.transport.hold(shards)
            async with self._stored:
                await self._stored.wait_for(lambda: self._unstored == 0)
            ingest.delivery.forget(
                {gw for gw in ingest.registry.gateways() if shard_of(gw, n) in given_up}
            )
        taken = shards - before
        open_keys = await ingest.book.open_keys() if taken else []
        ingest.core.scope_to(lambda gw: shard_of(gw, n) in shards, open_keys, ingest.clock())
        if taken:
            await self.transport.hold(shards)
        ingest.shards_held = shards

    async def _announce_unpushed(self) -> None:
        try:
            told = await self.ingest.announcer.announce_unpushed()
        except Exception:  # the next hold's end or start tries again
            log.exception("announcing the alarms never pushed failed")
            return
        if told:
            log.warning("%d stored alarm(s) had not been announced: announced now", told)
