"""Ingest shards: which gateways this cloud process handles, when several share the load.

In the cluster shape every gateway's messages go to one of `shards` queues, chosen by a hash of
its id (`cloud/transport/sharding.py`). Every cloud process on the same PostgreSQL is a worker;
each shard is consumed by one worker at a time — the one holding its lock
(`cloud/db/session_locks.py`) — so each gateway's messages are handled in order by one process,
and its rules and supervision state live there. The workers spread the shards among themselves:
every round (`every_s`) a worker counts the live workers W, aims at ceil(shards / W), gives one
shard back when it holds more (so a worker that joins gets its share within seconds) and takes
free ones while it holds fewer. A worker that dies loses its locks with its database session,
and the others take its shards in the next round.

Taking a shard: lock, then `apply` (the rules core restores the shard's open alarms, then the
transport consumes its queue). Giving one back: `apply` first (the transport stops consuming
it and what was taken from it is stored), then unlock: the next holder starts after the last
batch of the one before, so a gateway's order holds across a handover.

One process with the database to itself (SQLite, or the single box's MQTT session) holds
every shard and never asks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from cloud.db.session_locks import LocksLost, SessionLocks
from cloud.transport.sharding import shard_of

log = logging.getLogger(__name__)

#: Given the shards to hold from now on, makes it so (and returns once it is).
Apply = Callable[[frozenset[int]], Awaitable[None]]


class ShardOwner:
    def __init__(
        self, shards: int, locks: SessionLocks | None, apply: Apply, *, every_s: float = 1.0
    ) -> None:
        self.shards = shards
        self.locks = locks
        self.apply = apply
        self.every_s = every_s
        self.held: frozenset[int] = frozenset()
        #: set once this process holds its share for the first time
        self.settled = asyncio.Event()

    def holds(self, gateway: str) -> bool:
        return shard_of(gateway, self.shards) in self.held

    async def run(self) -> None:
        """Hold shards until cancelled; gives every lock back on the way out."""
        locks = self.locks
        if locks is None:
            await self._set(frozenset(range(self.shards)))
            self.settled.set()
            await asyncio.Event().wait()
            return
        await self.apply(frozenset())  # nothing held until a lock says so
        try:
            while True:
                try:
                    await self._round(locks)
                except LocksLost as exc:
                    log.warning("ingest shards: the database session was lost (%s)", exc)
                    await self._set(frozenset())  # the locks went with the session
                except Exception:  # the next round tries again
                    log.exception("ingest shards: a round failed")
                await asyncio.sleep(self.every_s)
        finally:
            # the locks go with the session; the broker gives what was not acknowledged back
            await locks.close()

    async def _round(self, locks: SessionLocks) -> None:
        target = math.ceil(self.shards / max(1, await locks.workers()))
        if len(self.held) > target:
            shard = max(self.held)
            await self._set(self.held - {shard})
            await locks.unlock(shard)
        elif len(self.held) < target:
            for shard in range(self.shards):
                if len(self.held) >= target:
                    break
                if shard not in self.held and await locks.try_lock(shard):
                    try:
                        await self._set(self.held | {shard})
                    except BaseException:
                        await locks.unlock(shard)  # not consumed here: free for another
                        raise
        if len(self.held) >= target:
            self.settled.set()

    async def _set(self, held: frozenset[int]) -> None:
        if held == self.held:
            return
        await self.apply(held)
        self.held = held
        log.info("ingest shards: holding %s of %d", sorted(held), self.shards)
