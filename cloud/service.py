"""Wiring of the cloud process: database, registry, the rules core and its reloader, alarm
book, maintenance windows, telemetry store, ingest, escalation and its channels, web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosqlite
import uvicorn

from cloud.alarms import AlarmBook
from cloud.audit import Audit
from cloud.broker_accounts import broker_accounts
from cloud.broker_link import BrokerLink
from cloud.claims import Claims
from cloud.config_push import ConfigPush
from cloud.credentials import GatewayCredentials
from cloud.db import open_database
from cloud.escalation import Escalator
from cloud.hub import LiveHub
from cloud.ingest import Ingest, alarm_message
from cloud.maintenance import Maintenance
from cloud.notify import Channel, PushChannel, WebhookChannel
from cloud.registry import Registry
from cloud.rejects import RejectLog
from cloud.reload import RulesReloader, check_against_site
from cloud.rules import RulesCore, load_rules_with_digest
from cloud.settings import CloudSettings
from cloud.site_service import SiteService
from cloud.site_store import SiteStore, SiteVersion, load_or_seed
from cloud.store import open_store
from cloud.store.base import TelemetryStore
from cloud.users import Role, Users
from contract.site import Site

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Cloud:
    settings: CloudSettings
    db: aiosqlite.Connection
    registry: Registry
    core: RulesCore
    reloader: RulesReloader
    book: AlarmBook
    audit: Audit
    maintenance: Maintenance
    escalator: Escalator
    store: TelemetryStore
    hub: LiveHub
    rejects: RejectLog
    users: Users
    credentials: GatewayCredentials
    claims: Claims
    ingest: Ingest
    site: SiteService
    config_push: ConfigPush
    web_url: str = ""


@contextlib.asynccontextmanager
async def open_cloud(settings: CloudSettings) -> AsyncIterator[Cloud]:
    """Open every part of the cloud (not yet consuming); closes them on exit."""
    loaded = load_rules_with_digest(settings.rules_file)
    db = await open_database(settings.database)
    store = open_store(settings.telemetry_url)
    webhook: WebhookChannel | None = None
    try:
        # the site registry: the newest version in the database; the site file seeds it once
        site, site_version = await load_or_seed(db, settings.site_file)
        registry = Registry(site, site_version.version)
        check_against_site(loaded, registry)
        await store.ping()
        book = AlarmBook(db, registry)
        audit = Audit(db, book.lock)
        rejects = RejectLog(
            db,
            book.lock,
            keep=settings.keep_rejected,
            keep_per_minute=settings.keep_rejected_per_minute,
        )
        await rejects.load()
        users = Users(db, book.lock, audit)
        for name, (role, password) in settings.bootstrap_users.items():
            await users.ensure(name, Role(role), password.get_secret_value())
        maintenance = Maintenance(db, book.lock, audit)
        await maintenance.load()
        credentials = GatewayCredentials(
            db, book.lock, audit, broker_accounts(settings), service_user=settings.mqtt_username
        )
        await credentials.sync()
        claims = Claims(
            db,
            book.lock,
            audit,
            secret=settings.session_secret.get_secret_value().encode(),
            ttl_s=settings.claim_code_ttl_s,
        )
        core = RulesCore(
            loaded.config, devices=registry.devices(), gateways=registry.gateways(), now=time.time()
        )
        core.restore(await book.open_keys())  # open alarms can still clear after a restart
        # acceptance budgets (accept_by) from the policies in force, also after a reload
        await book.use_budgets(lambda rule, level: core.config.policy_for(rule, level).budget_s)
        reloader = RulesReloader(settings.rules_file, loaded, core, registry, audit)
        hub = LiveHub()
        channels: dict[str, Channel] = {"push": PushChannel(hub)}
        if settings.webhook_url:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            webhook = WebhookChannel(
                settings.webhook_url, secret=secret, timeout_s=settings.webhook_timeout_s
            )
            channels["webhook"] = webhook
        else:
            log.warning("no SC_CLOUD_WEBHOOK_URL: notifications by webhook are recorded as skipped")
        escalator = Escalator(
            book=book,
            registry=registry,
            rules=lambda: core.config,
            channels=channels,
            on_change=lambda alarm: hub.publish(alarm_message(alarm)),
        )
        ingest = Ingest(
            registry=registry,
            core=core,
            book=book,
            store=store,
            hub=hub,
            rejects=rejects,
            maintenance=maintenance,
            on_new_alarms=escalator.wake,
            link=BrokerLink(f"{settings.mqtt_host}:{settings.mqtt_port}", on_change=hub.publish),
            flush_interval_s=settings.telemetry_flush_s,
            tick_s=settings.tick_s,
            gap_hold_s=settings.gap_hold_s,
            gap_fault_s=settings.gap_fault_s,
            max_clock_ahead_s=settings.max_clock_ahead_s,
            max_event_age_s=settings.max_event_age_s,
        )
        site = SiteService(
            store=SiteStore(db, book.lock, audit),
            registry=registry,
            core=core,
            reloader=reloader,
            book=book,
            hub=hub,
            site_file=settings.site_file,
        )
        # a device bound, moved or removed reaches its gateway as cmd/config
        config_push = ConfigPush(registry.site, ingest.send_command, audit)
        site.listeners.append(config_push.on_site)

        async def revoke_removed(new_site: Site, version: SiteVersion) -> None:
            registered = {gw.id for gw in new_site.gateways}
            actor = f"system (site v{version.version})"
            await credentials.revoke_missing(registered, actor)

        site.listeners.append(revoke_removed)
        ingest.on_reply = config_push.on_reply
        yield Cloud(
            settings=settings,
            db=db,
            registry=registry,
            core=core,
            reloader=reloader,
            book=book,
            audit=audit,
            maintenance=maintenance,
            escalator=escalator,
            store=store,
            hub=hub,
            rejects=rejects,
            users=users,
            credentials=credentials,
            claims=claims,
            ingest=ingest,
            site=site,
            config_push=config_push,
        )
    finally:
        if webhook is not None:
            await webhook.close()
        await store.close()
        await db.close()


async def serve(cloud: Cloud, *, started: asyncio.Event | None = None) -> None:
    """Serve the web app and consume from the broker until cancelled.

    `started` is set once the web app answers (`cloud.web_url`), whether or not the broker
    is there: a missing broker is retried with back-off and shown on the board, it does not
    stop the cloud. Whoever needs ingest too (to publish and see the result) waits for
    `cloud.ingest.connected` as well."""
    from cloud.web.app import create_app

    settings = cloud.settings
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    escalation = asyncio.create_task(cloud.escalator.run(), name="escalation")
    consumer = asyncio.create_task(
        cloud.ingest.run(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=password,
            client_id=settings.mqtt_client_id,
            retry_min_s=settings.mqtt_retry_min_s,
            retry_max_s=settings.mqtt_retry_max_s,
            tls_ca_file=settings.mqtt_tls_ca_file,
        ),
        name="ingest",
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
        await asyncio.gather(consumer, web, escalation)
    finally:
        server.should_exit = True
        consumer.cancel()
        escalation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        with contextlib.suppress(asyncio.CancelledError):
            await escalation
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(web, timeout=5)


def bound_port(server: uvicorn.Server) -> int:
    sock = server.servers[0].sockets[0]
    return int(sock.getsockname()[1])
