"""Frames between the cloud and its MQTT receiver process (`mqtt_process.py`,
`mqtt_receiver.py`): a 4-byte length, then a pickled tuple whose first item names it.

Only ever over the `socketpair` the cloud makes and hands to the child it starts itself (never
a listening socket), so both ends are this program: pickle is the cheapest way to pass a batch
of (topic, payload) pairs, ~1 µs per message both ways.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

_HEADER = 4
#: A batch of 500 events of 1 KiB is ~0.5 MB; anything far past this is a bug, not a frame.
MAX_FRAME = 64 * 1024 * 1024


def pack(*frame: Any) -> bytes:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "big") + data


async def read(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next frame; `asyncio.IncompleteReadError` when the other end has gone."""
    size = int.from_bytes(await reader.readexactly(_HEADER), "big")
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes from the other process")
    frame = pickle.loads(await reader.readexactly(size))
    if not isinstance(frame, tuple) or not frame:
        raise ValueError(f"not a frame: {type(frame).__name__}")
    return frame
