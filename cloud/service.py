"""Wiring of the cloud process: database, registry, rules, alarm book, store, ingest, web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosqlite
import uvicorn

from cloud.alarms import AlarmBook
from cloud.db import open_database
from cloud.hub import LiveHub
from cloud.ingest import Ingest
from cloud.registry import Registry
from cloud.rejects import RejectLog
from cloud.rules import Rules, load_rules
from cloud.settings import CloudSettings
from cloud.store import open_store
from cloud.store.base import TelemetryStore
from cloud.users import Role, Users
from contract.site import load_site

log = logging.getLogger(__name__)


@dataclass
class Cloud:
    settings: CloudSettings
    db: aiosqlite.Connection
    registry: Registry
    rules: Rules
    book: AlarmBook
    store: TelemetryStore
    hub: LiveHub
    rejects: RejectLog
    users: Users
    ingest: Ingest
    web_url: str = ""


@contextlib.asynccontextmanager
async def open_cloud(settings: CloudSettings) -> AsyncIterator[Cloud]:
    """Open every part of the cloud (not yet consuming); closes them on exit."""
    registry = Registry(load_site(settings.site_file))
    rules = Rules(load_rules(settings.rules_file))
    db = await open_database(settings.database)
    store = open_store(settings.telemetry_url)
    try:
        await store.ping()
        book = AlarmBook(db, registry)
        rejects = RejectLog(db, book.lock, keep=settings.keep_rejected)
        users = Users(db, book.lock)
        for name, (role, password) in settings.bootstrap_users.items():
            await users.ensure(name, Role(role), password.get_secret_value())
        hub = LiveHub()
        ingest = Ingest(
            registry=registry,
            rules=rules,
            book=book,
            store=store,
            hub=hub,
            rejects=rejects,
            flush_interval_s=settings.telemetry_flush_s,
        )
        yield Cloud(settings, db, registry, rules, book, store, hub, rejects, users, ingest)
    finally:
        await store.close()
        await db.close()


async def serve(cloud: Cloud, *, started: asyncio.Event | None = None) -> None:
    """Consume from the broker and serve the web app until cancelled."""
    from cloud.web.app import create_app

    settings = cloud.settings
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    consumer = asyncio.create_task(
        cloud.ingest.run(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=password,
            client_id=settings.mqtt_client_id,
        ),
        name="ingest",
    )
    config = uvicorn.Config(
        create_app(cloud),
        host=settings.web_host,
        port=settings.web_port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    web = asyncio.create_task(server.serve(), name="web")
    try:
        while not server.started:
            if web.done():
                await web  # raises the start-up error (e.g. port in use)
            await asyncio.sleep(0.02)
        cloud.web_url = f"http://{settings.web_host}:{bound_port(server)}"
        await asyncio.wait_for(cloud.ingest.connected.wait(), timeout=30)
        if started is not None:
            started.set()
        await asyncio.gather(consumer, web)
    finally:
        server.should_exit = True
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(web, timeout=5)


def bound_port(server: uvicorn.Server) -> int:
    sock = server.servers[0].sockets[0]
    return int(sock.getsockname()[1])
