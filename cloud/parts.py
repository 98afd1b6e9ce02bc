"""The parts of the cloud process, wired: database, registry, the rules core and its reloader, alarm
book, maintenance windows, telemetry store, ingest, escalation and its channels, web."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from cloud.access.audit import Audit
from cloud.access.broker_accounts import broker_accounts
from cloud.access.claims import Claims
from cloud.access.credentials import GatewayCredentials
from cloud.access.users import Role, Users
from cloud.alarms.book import AlarmBook
from cloud.alarms.casework import Casework
from cloud.alarms.hush import Hush
from cloud.alarms.queries import AlarmQueries
from cloud.db.database import Database
from cloud.db.session_locks import SessionLocks
from cloud.db.url import DatabaseUrl
from cloud.devices.health import HealthReports
from cloud.devices.maintenance import Maintenance
from cloud.duty.desk import DutyDesk
from cloud.ingest.pipeline import Ingest
from cloud.ingest.rejects import RejectLog
from cloud.live import messages
from cloud.live.hub import LiveHub
from cloud.notify import Channel, PushChannel, WebhookChannel
from cloud.notify.announce import Announcer
from cloud.notify.channels import Closable, vendor_channels
from cloud.notify.log import NotificationLog
from cloud.peers import Peers, open_peers
from cloud.routing.escalation import Escalator
from cloud.routing.sender import LEASE_S
from cloud.rules import RulesCore, load_rules_with_digest
from cloud.rules.reload import RulesReloader, check_against_site
from cloud.settings import CloudSettings, parse_node
from cloud.simulation import Simulator
from cloud.site.registry import Registry
from cloud.site.store import SiteStore, SiteVersion, load_or_seed
from cloud.site_changes.config_push import ConfigPush
from cloud.site_changes.service import SiteService
from cloud.telemetry.base import TelemetryStore
from cloud.telemetry.history import Retention
from cloud.telemetry.open import open_store
from cloud.transport.amqp import AmqpTransport, ClusterAddress, Node
from cloud.transport.base import Transport
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import BrokerAddress, MqttTransport
from cloud.voice.desk import VoiceDesk
from contract.catalogue import Catalogue
from contract.models import Reply
from contract.site import Site

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Cloud:
    settings: CloudSettings
    db: Database
    registry: Registry
    core: RulesCore
    reloader: RulesReloader
    book: AlarmBook
    alarms: AlarmQueries
    casework: Casework
    announcer: Announcer
    notifications: NotificationLog
    audit: Audit
    maintenance: Maintenance
    health: HealthReports
    escalator: Escalator
    store: TelemetryStore
    hub: LiveHub
    rejects: RejectLog
    users: Users
    credentials: GatewayCredentials
    claims: Claims
    transport: Transport
    ingest: Ingest
    site: SiteService
    config_push: ConfigPush
    hush: Hush
    duty: DutyDesk
    voice: VoiceDesk
    #: who holds which ingest shard, when several processes share a PostgreSQL (the cluster)
    shard_locks: SessionLocks | None = None
    web_url: str = ""
    #: the demo's simulated devices (sim/panel.py); served only with `settings.simulator`
    simulator: Simulator | None = None
    #: the other cloud processes on the same PostgreSQL (cloud/peers.py); None on SQLite
    peers: Peers | None = None


@contextlib.asynccontextmanager
async def open_cloud(settings: CloudSettings) -> AsyncIterator[Cloud]:
    """Open every part of the cloud (not yet consuming); closes them on exit."""
    loaded = load_rules_with_digest(settings.rules_file)
    db = await Database.open(settings.database)
    store = open_store(
        settings.telemetry_url,
        retention=Retention(
            settings.telemetry_raw_days,
            settings.telemetry_minute_days,
            settings.telemetry_hour_days,
        ),
    )
    webhook: WebhookChannel | None = None
    vendors: dict[str, Closable] = {}
    try:
        # the site registry: the newest version in the database; the site file seeds it once
        seeded, site_version = await load_or_seed(db, settings.site_file)
        registry = Registry(seeded, site_version.version)
        check_against_site(loaded, registry)
        await store.ping()
        book = AlarmBook(db, registry)
        audit = Audit(db)
        rejects = RejectLog(
            db,
            keep=settings.keep_rejected,
            keep_per_minute=settings.keep_rejected_per_minute,
        )
        await rejects.load()
        users = Users(db, audit)
        for name, (role, password) in settings.bootstrap_users.items():
            await users.ensure(name, Role(role), password.get_secret_value())
        maintenance = Maintenance(db, audit)
        await maintenance.load()
        credentials = GatewayCredentials(
            db, audit, broker_accounts(settings), service_user=settings.mqtt_username
        )
        await credentials.sync()
        claims = Claims(
            db,
            audit,
            secret=settings.session_secret.get_secret_value().encode(),
            ttl_s=settings.claim_code_ttl_s,
        )
        core = RulesCore(
            loaded.config, devices=registry.devices(), gateways=registry.gateways(), now=db.clock()
        )
        core.restore(await book.open_keys())  # open alarms can still clear after a restart
        # acceptance budgets (accept_by) from the policies in force, also after a reload
        await book.use_budgets(lambda rule, level: core.config.policy_for(rule, level).budget_s)
        reloader = RulesReloader(settings.rules_file, loaded, core, registry, audit)
        hub = LiveHub()
        notifications = NotificationLog(db)
        channels: dict[str, Channel] = {"push": PushChannel(hub)}
        if settings.webhook_url:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            webhook = WebhookChannel(
                settings.webhook_url, secret=secret, timeout_s=settings.webhook_timeout_s
            )
            channels["webhook"] = webhook
        vendors = vendor_channels(settings)
        channels.update(vendors)
        log.info("notification channels: %s", ", ".join(sorted(channels)))
        named = {
            via.value
            for policy in loaded.config.policies
            for notify in (*policy.notify, *policy.escalate)
            for via in (*notify.via, *notify.fallback)
        }
        if missing := sorted(named - set(channels)):
            log.warning(
                "the policies name channels that are not configured (recorded as skipped,"
                " then their fallback): %s",
                ", ".join(missing),
            )
        announcer = Announcer(db, hub, notifications)
        escalator = Escalator(
            db=db,
            registry=registry,
            rules=lambda: core.config,
            channels=channels,
            notifications=notifications,
            on_change=announcer.changed,
            case_url=settings.case_url,
            lease_s=max(LEASE_S, 6 * settings.notify_timeout_s),
        )
        announcer.on_new_alarms = escalator.wake
        link = BrokerLink(on_change=lambda up, since: hub.publish(messages.broker_state(up, since)))
        transport = open_transport(settings, link, registry.gateways)
        ingest = Ingest(
            registry=registry,
            core=core,
            book=book,
            store=store,
            announcer=announcer,
            rejects=rejects,
            maintenance=maintenance,
            transport=transport,
            flush_interval_s=settings.telemetry_flush_s,
            tick_s=settings.tick_s,
            max_batch=settings.ingest_max_batch,
            gap_hold_s=settings.gap_hold_s,
            gap_fault_s=settings.gap_fault_s,
            max_clock_ahead_s=settings.max_clock_ahead_s,
            max_event_age_s=settings.max_event_age_s,
            clock=db.clock,
        )
        site = SiteService(
            store=SiteStore(db, audit),
            registry=registry,
            core=core,
            reloader=reloader,
            book=book,
            announcer=announcer,
            site_file=settings.site_file,
        )
        # a device bound, moved or removed reaches its gateway as cmd/config
        config_push = ConfigPush(registry.site, transport.send_command, audit)
        site.listeners.append(config_push.on_site)
        site.followers.append(config_push.follow)  # another process pushed that version

        async def revoke_removed(new_site: Site, version: SiteVersion) -> None:
            registered = {gw.id for gw in new_site.gateways}
            actor = f"system (site v{version.version})"
            await credentials.revoke_missing(registered, actor)

        site.listeners.append(revoke_removed)

        async def bind_gateways(new_site: Site, _version: SiteVersion) -> None:
            for gateway in new_site.gateways:  # to its ingest shard's queue (the cluster)
                await transport.bind(gateway.id)

        site.listeners.append(bind_gateways)
        peers = open_peers(settings.database, hub=hub, maintenance=maintenance, site=site)
        health = HealthReports(
            db=db,
            registry=registry,
            core=core,
            book=book,
            store=store,
            maintenance=maintenance,
        )
        duty = DutyDesk.build(
            db=db, registry=registry, book=book, health=health, audit=audit, announcer=announcer
        )
        escalator.roster = duty.roster  # escalation steps name roles of the roster
        alarms = AlarmQueries(db)
        hush = Hush(
            alarms=alarms,
            book=book,
            registry=registry,
            audit=audit,
            send_command=transport.send_command,
            announce=announcer.changed,
        )

        voice = VoiceDesk(
            db=db,
            send_command=transport.send_command,
            note=book.note,
            record=audit.record,
            publish=lambda call: hub.publish(messages.call_changed(call)),
            has_audio=lambda gateway: _has_audio(registry.site, gateway),
        )
        announcer.on_raised.append(
            lambda alarm: voice.alarm_raised(alarm.id, alarm.kind, alarm.gateway, alarm.device)
        )
        announcer.on_changed.append(
            lambda alarm: voice.alarm_closed(alarm.id) if alarm.state == "resolved" else None
        )
        announcer.on_gateway_state.append(voice.gateway_state)

        async def on_reply(reply: Reply) -> None:  # a gateway's answer to a command
            await config_push.on_reply(reply)
            await hush.on_reply(reply)
            await voice.on_reply(reply)

        ingest.on_reply = on_reply
        yield Cloud(
            settings=settings,
            db=db,
            registry=registry,
            core=core,
            reloader=reloader,
            book=book,
            alarms=alarms,
            casework=Casework(db),
            announcer=announcer,
            notifications=notifications,
            audit=audit,
            maintenance=maintenance,
            health=health,
            escalator=escalator,
            store=store,
            hub=hub,
            rejects=rejects,
            users=users,
            credentials=credentials,
            claims=claims,
            transport=transport,
            ingest=ingest,
            site=site,
            config_push=config_push,
            hush=hush,
            duty=duty,
            voice=voice,
            shard_locks=shard_locks(settings),
            peers=peers,
        )
    finally:
        if webhook is not None:
            await webhook.close()
        for vendor in vendors.values():
            await vendor.close()
        await store.close()
        await db.close()


def open_transport(
    settings: CloudSettings,
    link: BrokerLink,
    gateways: Callable[[], Iterable[str]] = tuple,
) -> Transport:
    """The transport of the shape the settings choose: the single box's MQTT session, or the
    cluster's AMQP consumer (docs/cluster.md)."""
    if settings.broker == "rabbitmq":
        password = settings.amqp_password
        return AmqpTransport(
            ClusterAddress(
                nodes=tuple(Node(*parse_node(value)) for value in settings.amqp_nodes),
                username=settings.amqp_username,
                password=password.get_secret_value() if password else "",
                client_id=settings.mqtt_client_id,
                queue=settings.amqp_queue,
                shards=settings.ingest_shards,
                heartbeat_s=settings.amqp_heartbeat_s,
            ),
            link=link,
            gateways=gateways,
            drops=DropWatch(),
            retry_min_s=settings.mqtt_retry_min_s,
            retry_max_s=settings.mqtt_retry_max_s,
            max_batch=settings.ingest_max_batch,
        )
    mqtt_password = settings.mqtt_password
    return MqttTransport(
        BrokerAddress(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=mqtt_password.get_secret_value() if mqtt_password else None,
            client_id=settings.mqtt_client_id,
            tls_ca_file=settings.mqtt_tls_ca_file,
        ),
        link=link,
        drops=DropWatch(),
        retry_min_s=settings.mqtt_retry_min_s,
        retry_max_s=settings.mqtt_retry_max_s,
        max_batch=settings.ingest_max_batch,
    )


def shard_locks(settings: CloudSettings) -> SessionLocks | None:
    """The shards' locks when several cloud processes can share the load: the cluster shape
    on PostgreSQL (SQLite and the single box's MQTT session have one consumer)."""
    url = DatabaseUrl.parse(settings.database)
    if settings.broker != "rabbitmq" or url.backend != "postgresql":
        return None
    if settings.telemetry_url.startswith("sqlite:"):
        log.warning(
            "ingest workers with a SQLite telemetry store: each worker keeps the readings of"
            " its own gateways; several workers need one InfluxDB (SC_CLOUD_TELEMETRY_URL)"
        )
    return SessionLocks(url.target)


def _has_audio(site: Site, gateway: str) -> bool:
    """Whether a gateway's board profile has audio for one-key voice."""
    entry = next((gw for gw in site.gateways if gw.id == gateway), None)
    if entry is None:
        return False
    try:
        return Catalogue().profile(entry.profile).audio is not None
    except Exception:  # the site names a profile this cloud does not have: no voice
        log.warning("voice: profile %s of %s unreadable", entry.profile, gateway)
        return False
