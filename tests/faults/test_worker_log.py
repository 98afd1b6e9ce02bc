"""The workers' shards read from their logs (tests/faults/workers.py), on made-up records."""

from __future__ import annotations

from datetime import datetime

from tests.faults.workers import is_spread, read_holdings, shard_of

LOG = """2026-12-02 17:01:02,345 level=INFO logger=cloud.ingest ingest shards: holding [] of 4
2026-12-02 17:01:02,900 level=INFO logger=cloud.web started
2026-12-02 17:01:03,001 level=INFO logger=cloud.ingest ingest shards: holding [0, 1, 2, 3] of 4
2026-12-02 17:01:09,250 level=INFO logger=cloud.ingest ingest shards: holding [0, 2] of 4
2026-12-02 17:01:09,2"""  # the last record cut by kill -9


def test_every_whole_holding_record_is_read_with_its_time() -> None:
    holdings = read_holdings(LOG)
    assert [sorted(h.shards) for h in holdings] == [[], [0, 1, 2, 3], [0, 2]]
    assert {h.of for h in holdings} == {4}
    local = datetime(2026, 12, 2, 17, 1, 9, 250000).timestamp()
    assert abs(holdings[-1].at - local) < 1e-6


def test_spread_means_every_shard_once_and_a_fair_share_each() -> None:
    s = frozenset
    assert is_spread([s({0, 2}), s({1, 3})], 4)
    assert not is_spread([s({0, 1, 2, 3}), s()], 4)  # one worker holds all
    assert not is_spread([s({0, 2}), s({1})], 4)  # shard 3 held by nobody
    assert not is_spread([s({0, 1}), s({1, 2, 3})], 4)  # shard 1 held twice
    assert is_spread([s({0, 1, 2})], 3)
    assert is_spread([s({0, 1}), s({2})], 3)  # 3 over 2: one worker holds one more
    assert not is_spread([], 4)


def test_the_shard_of_a_gateway_is_the_clouds_hash() -> None:
    # zlib.crc32(b"gw-f01") % 4 == 2 and so on: the scenario's gateways cover every shard
    assert [shard_of(gw, 4) for gw in ("gw-f01", "gw-f02", "gw-f04", "gw-f05")] == [2, 0, 1, 3]
