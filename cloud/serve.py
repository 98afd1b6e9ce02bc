"""Running the cloud: ingest (the MQTT session), escalation and the web app, until cancelled.
The only module besides the entry point that imports the web app."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

from cloud.ingest import batch_ids
from cloud.ingest.consumer import BrokerConsumer
from cloud.parts import Cloud
from cloud.telemetry import history
from cloud.web.app import create_app


async def serve(cloud: Cloud, *, started: asyncio.Event | None = None) -> None:
    """Serve the web app and consume from the broker until cancelled.

    `started` is set once the web app answers (`cloud.web_url`), whether or not the broker
    is there: a missing broker is retried with back-off and shown on the board, it does not
    stop the cloud. Whoever needs ingest too (to publish and see the result) waits for
    `cloud.ingest.connected` as well."""
    settings = cloud.settings
    escalation = asyncio.create_task(cloud.escalator.run(), name="escalation")
    keeping = asyncio.create_task(history.keep(cloud.store), name="telemetry-history")
    forgetting = asyncio.create_task(
        batch_ids.keep_forgetting(cloud.db, settings.telemetry_batch_ids_days * 86400),
        name="batch-ids",
    )
    checking = asyncio.create_task(
        cloud.duty.checkins.run(settings.checkin_sweep_s), name="checkin"
    )
    consumer = asyncio.create_task(
        BrokerConsumer(
            cloud.ingest,
            cloud.transport,
            shards=settings.ingest_shards,
            locks=cloud.shard_locks,
        ).run(),
        name="ingest",
    )
    # the other cloud processes on the same PostgreSQL (nothing to do on SQLite)
    peers = asyncio.create_task(
        cloud.peers.run() if cloud.peers else asyncio.Event().wait(), name="peers"
    )
    config = uvicorn.Config(
        create_app(cloud),
        host=settings.web_host,
        port=settings.web_port,
        log_level="warning",
        lifespan="off",
        # HTTPS when a certificate is configured (cloud.web_url then starts with https://)
        ssl_certfile=settings.web_tls_cert_file,
        ssl_keyfile=settings.web_tls_key_file,
        # X-Forwarded-For/-Proto only from the configured proxies (uvicorn would trust any
        # from 127.0.0.1, so one local client could pose as many for the sign-in limits)
        proxy_headers=bool(settings.web_trusted_proxies),
        forwarded_allow_ips=list(settings.web_trusted_proxies),
    )
    server = uvicorn.Server(config)
    web = asyncio.create_task(server.serve(), name="web")
    try:
        while not server.started:
            if web.done():
                await web  # raises the start-up error (e.g. port in use)
            await asyncio.sleep(0.02)
        scheme = "https" if settings.web_tls_cert_file else "http"
        cloud.web_url = f"{scheme}://{settings.web_host}:{bound_port(server)}"
        if started is not None:
            started.set()
        await asyncio.gather(consumer, web, escalation, keeping, checking, forgetting, peers)
    finally:
        server.should_exit = True
        consumer.cancel()
        escalation.cancel()
        keeping.cancel()
        checking.cancel()
        forgetting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forgetting
        peers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await peers
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        with contextlib.suppress(asyncio.CancelledError):
            await checking
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        with contextlib.suppress(asyncio.CancelledError):
            await escalation
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(web, timeout=5)


def bound_port(server: uvicorn.Server) -> int:
    sock = server.servers[0].sockets[0]
    return int(sock.getsockname()[1])
