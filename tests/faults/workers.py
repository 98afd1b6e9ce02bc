"""The cloud's ingest workers as the fault suite sees them from outside: which shards each
holds, read from its log, and whether the shards are spread over the live workers.

With `SC_CLOUD_INGEST_SHARDS=N` every gateway's messages go to one of N shard queues, by
`zlib.crc32(gateway_id) % N`; every `python -m cloud` on the same PostgreSQL and cluster is a
worker, and each logs, on every change of what it holds, a record such as

    2026-12-02 17:01:02,345 level=INFO logger=cloud.ingest.shards ingest shards: holding [0, 2] of 4

Only a worker's newest incarnation (its newest log file) says what it holds now; a worker that
is not running holds nothing.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.faults.procs import CloudProcess

_HOLDING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) level=\w+ logger=\S+ "
    r"ingest shards: holding \[([\d, ]*)\] of (\d+)\s*$",
    re.M,
)


def shard_of(gateway: str, shards: int) -> int:
    """The shard a gateway's messages go to (the cloud's hash)."""
    return zlib.crc32(gateway.encode()) % shards


@dataclass(frozen=True)
class Holding:
    """One `ingest shards: holding …` record."""

    at: float  # its time (time.time(); the log's local time)
    shards: frozenset[int]
    of: int


def read_holdings(text: str) -> list[Holding]:
    """Every `holding` record of a log, in its order."""
    out = []
    for found in _HOLDING.finditer(text):
        at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        shards = frozenset(int(s) for s in found.group(2).split(",") if s.strip())
        out.append(Holding(at, shards, int(found.group(3))))
    return out


def is_spread(held: Sequence[frozenset[int]], shards: int) -> bool:
    """Every shard held by exactly one worker, and each worker holding its share (N // W or
    one more)."""
    if not held:
        return False
    share = shards // len(held)
    every = [s for h in held for s in h]
    return sorted(every) == list(range(shards)) and all(share <= len(h) <= share + 1 for h in held)


@dataclass
class Spread:
    """The moment the shards were spread (the newest record among the workers' latest)."""

    at: float
    held: list[frozenset[int]]


class Workers:
    """The workers of a stack (`Stack.clouds`), read through their logs."""

    def __init__(self, clouds: Sequence[CloudProcess], shards: int):
        self.clouds = list(clouds)
        self.shards = shards

    def latest(self, cloud: CloudProcess) -> Holding | None:
        """A running worker's newest `holding` record (None: not running, or none yet)."""
        if not cloud.alive() or not cloud.logs:
            return None
        holdings = _holdings(cloud.logs[-1])
        return holdings[-1] if holdings else None

    def held(self) -> list[frozenset[int]]:
        """What each worker holds now (nothing, if it is not running)."""
        out = []
        for cloud in self.clouds:
            latest = self.latest(cloud)
            out.append(latest.shards if latest is not None else frozenset())
        return out

    def spread(self) -> Spread | None:
        """The spread the running workers are in now, if they are."""
        latest = [self.latest(c) for c in self.clouds if c.alive()]
        if any(h is None for h in latest):
            return None
        records = [h for h in latest if h is not None]
        held = [h.shards for h in records]
        if not is_spread(held, self.shards) or any(h.of != self.shards for h in records):
            return None
        return Spread(max(h.at for h in records), self.held())

    def wait_spread(self, within_s: float) -> Spread | None:
        """Until the shards are spread over the running workers (None: not within `within_s`)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if (found := self.spread()) is not None:
                return found
            time.sleep(0.1)
        return None

    def holder(self, shard: int) -> int:
        """The index of the worker that holds `shard` now."""
        for i, held in enumerate(self.held()):
            if shard in held:
                return i
        raise LookupError(f"no running worker holds shard {shard}: {self.held()}")

    def took(self, worker: int, shards: frozenset[int], after: float) -> float | None:
        """When `worker` (its newest incarnation) first logged holding all of `shards` after
        `after` (None: never)."""
        cloud = self.clouds[worker]
        if not cloud.logs:
            return None
        for h in _holdings(cloud.logs[-1]):
            if h.at >= after and shards <= h.shards:
                return h.at
        return None


def _holdings(log: Path) -> list[Holding]:
    return read_holdings(log.read_text(errors="replace")) if log.exists() else []
