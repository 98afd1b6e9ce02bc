"""Ingest shards shared by workers on one PostgreSQL (cloud/ingest/shards.py): each shard held
by one worker, spread evenly, a dead worker's taken over, a lost session's given up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from cloud.db.session_locks import SessionLocks
from cloud.db.url import DatabaseUrl
from cloud.ingest.shards import ShardOwner
from tests.db_backends import outside_connection

pytestmark = pytest.mark.parametrize("db_backend", ["postgresql"])

ALL = frozenset(range(4))


class Worker:
    def __init__(self, url: str) -> None:
        self.held: frozenset[int] = frozenset()
        self.owner = ShardOwner(4, SessionLocks(url), self.apply, every_s=0.05)
        self.task = asyncio.create_task(self.owner.run())

    async def apply(self, shards: frozenset[int]) -> None:
        self.held = shards


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_workers_share_the_shards_and_take_over_from_a_dead_one(database_url: str) -> None:
    url = DatabaseUrl.parse(database_url).target
    a = Worker(url)
    await until(lambda: a.held == ALL)  # alone: every shard
    b = Worker(url)
    await until(lambda: len(a.held) == len(b.held) == 2)  # a second worker gets its half
    assert a.held | b.held == ALL and not a.held & b.held
    a.task.cancel()  # a stops: its session ends, its locks with it
    await asyncio.gather(a.task, return_exceptions=True)
    took = await until(lambda: b.held == ALL)
    assert took < 2.0
    b.task.cancel()
    await asyncio.gather(b.task, return_exceptions=True)


async def test_a_worker_whose_session_is_lost_gives_its_shards_up_then_shares_again(
    database_url: str,
) -> None:
    url = DatabaseUrl.parse(database_url).target
    a, b = Worker(url), Worker(url)
    await until(lambda: len(a.held) == len(b.held) == 2)
    given_up: list[frozenset[int]] = []
    apply = a.owner.apply

    async def record(shards: frozenset[int]) -> None:
        given_up.append(shards)
        await apply(shards)

    a.owner.apply = record
    # a's session ends under it (an administrator, a restart, a network cut noticed)
    admin = outside_connection(database_url)
    try:
        admin.execute(
            "SELECT pg_terminate_backend(?)",
            (a.owner.locks._conn.raw.info.backend_pid,),  # type: ignore[union-attr]
        )
    finally:
        admin.close()
    await until(lambda: frozenset() in given_up)  # a noticed: it consumes nothing it lost
    await until(lambda: len(a.held) == len(b.held) == 2 and a.held | b.held == ALL)
    for worker in (a, b):
        worker.task.cancel()
        await asyncio.gather(worker.task, return_exceptions=True)
