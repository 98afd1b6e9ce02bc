"""Idle gateway connections: what each broker spends on sessions that only keep alive."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bench.cluster_capacity.phase import Broker
from bench.cluster_capacity.traffic import HOST, Account, cpu_s

# ---- idle gateway connections ------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    """Resident memory of one process (VmRSS of /proc/PID/status), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def mqtt_connect_packet(client_id: str, user: str, password: str, keepalive: int) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, user name and password), as a gateway sends it."""
    body = (
        _mqtt_string("MQTT")
        + bytes([4, 0xC2])
        + keepalive.to_bytes(2, "big")
        + _mqtt_string(client_id)
        + _mqtt_string(user)
        + _mqtt_string(password)
    )
    length, size = b"", len(body)
    while True:
        byte, size = size % 128, size // 128
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return b"\x10" + length + body


async def open_idle(
    accounts: Sequence[Account], count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`count` MQTT sessions that connect (CONNACK accepted) and then say nothing, as gateways
    between two batches; round robin over the accounts (and so over the cluster's nodes)."""
    limit = asyncio.Semaphore(100)

    async def one(i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        account = accounts[i % len(accounts)]
        async with limit:
            reader, writer = await asyncio.open_connection(HOST, account.port)
            writer.write(
                mqtt_connect_packet(
                    f"{account.gateway}-idle{i}", account.gateway, account.password, keepalive=60
                )
            )
            await writer.drain()
            connack = await asyncio.wait_for(reader.readexactly(4), 30)
            if connack[0] != 0x20 or connack[3] != 0:
                raise RuntimeError(f"broker refused an idle connection: {connack.hex()}")
            return reader, writer

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@dataclass
class Idle:
    broker: str
    idle_cpu_s_per_s: float  # with no client at all
    connections: int
    kb_per_connection: float
    cpu_ms_per_s_per_1000: float


def measure_idle_connections(broker: Broker, count: int, settle_s: float, window_s: float) -> Idle:
    """The broker's CPU with no client over `window_s`; then the memory and CPU it spends on
    `count` idle sessions: RSS before and `settle_s` after they connected, then CPU over
    `window_s` (less the CPU with no client)."""

    async def run() -> Idle:
        before = sum(rss_kb(p) for p in broker.pids)
        cpu_before = sum(cpu_s(p) for p in broker.pids)
        await asyncio.sleep(window_s)
        idle = (sum(cpu_s(p) for p in broker.pids) - cpu_before) / window_s
        sessions = await open_idle(broker.accounts, count)
        try:
            await asyncio.sleep(settle_s)
            after = sum(rss_kb(p) for p in broker.pids)
            cpu_before = sum(cpu_s(p) for p in broker.pids)
            await asyncio.sleep(window_s)
            cpu = (sum(cpu_s(p) for p in broker.pids) - cpu_before) / window_s - idle
        finally:
            for _, writer in sessions:
                writer.close()
        return Idle(broker.name, idle, count, (after - before) / count, 1e6 * cpu / count)

    return asyncio.run(run())
