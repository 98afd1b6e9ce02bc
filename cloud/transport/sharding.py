"""Which ingest shard a gateway's messages go to (cloud/ingest/shards.py holds the shards)."""

from __future__ import annotations

import zlib


def shard_of(gateway: str, shards: int) -> int:
    """The shard of a gateway's messages: stable across processes, restarts and versions."""
    return zlib.crc32(gateway.encode()) % shards
