"""Shared test helpers for the rules core: a clock the test moves, a rules file changed from
the default, a real local HTTP receiver for the webhook channel, and the alarm book, rules
core and escalator on a database without the rest of the cloud."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from cloud.access.audit import Audit
from cloud.alarms.arrivals import Arrival
from cloud.alarms.book import AlarmBook
from cloud.alarms.casework import Casework
from cloud.alarms.queries import AlarmQueries
from cloud.db.database import Database
from cloud.duty.roster import Roster
from cloud.live.hub import LiveHub
from cloud.notify import Channel, PushChannel, WebhookChannel
from cloud.notify.announce import Announcer
from cloud.notify.log import NotificationLog
from cloud.routing.escalation import Escalator
from cloud.rules import Evaluation, RulesCore, RulesFile, load_rules
from cloud.settings import DEFAULT_RULES, DEFAULT_SITE
from cloud.site.registry import Registry
from contract.models import Event
from contract.site import load_site

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def default_rules_dict() -> dict[str, Any]:
    return dict(yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8")))


def rules_file(
    tmp: Path, change: Callable[[dict[str, Any]], None], name: str = "rules.yaml"
) -> Path:
    """The default rules file with `change` applied to its parsed form, written to tmp."""
    data = copy.deepcopy(default_rules_dict())
    change(data)
    path = tmp / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def fast_policies(
    budget_s: float = 0.4, every_s: float = 0.3, reminders: int = 0
) -> Callable[[dict[str, Any]], None]:
    """Every policy with a short budget and steps, for tests that run on the real clock."""

    def change(data: dict[str, Any]) -> None:
        for policy in data["policies"]:
            policy["budget_s"] = budget_s
            policy["escalate_every_s"] = every_s
            policy["remind_every_s"] = every_s
            policy["reminders"] = reminders

    return change


def event(
    device: str = "smoke-0102",
    kind: str = "smoke",
    type_: str = "alarm",
    gateway: str = "gw-ld01",
    ts: datetime | None = None,
    event_id: str | None = None,
    **values: float,
) -> Event:
    return Event.model_validate(
        {
            "id": event_id or str(uuid.uuid4()),
            "gateway": gateway,
            "device": device,
            "boot": "b",
            "seq": 1,
            "ts": (ts or datetime.fromtimestamp(T0, UTC)).isoformat(),
            "kind": kind,
            "type": type_,
            "values": values,
        }
    )


class WebhookReceiver:
    """A real HTTP server on loopback (http.server in a thread) that records every POST;
    `status` sets what it answers, `stop()` takes it down like an outage."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.status
                    if status < 300:
                        receiver.received.append(json.loads(body))
                        receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(r["key"] for r in self.received)

    def steps(self, alarm_id: int | None = None) -> list[tuple[int, str]]:
        with self._lock:
            return [
                (r["step"], r["to"]["target"])
                for r in self.received
                if alarm_id is None or r["alarm"]["id"] == alarm_id
            ]


@dataclass
class Parts:
    db: Database
    book: AlarmBook
    alarms: AlarmQueries
    casework: Casework
    core: RulesCore
    escalator: Escalator
    notifications: NotificationLog
    announcer: Announcer
    hub: LiveHub
    registry: Registry
    config: RulesFile
    roster: Roster


@contextlib.asynccontextmanager
async def book_parts(
    database: Path | str,
    clock: FakeClock,
    *,
    config: RulesFile | None = None,
    webhook_url: str | None = None,
    channels: dict[str, Channel] | None = None,
    case_url: str = "",
    with_roster: bool = False,
) -> AsyncIterator[Parts]:
    """Alarm book, rules core (restored from the open alarms) and escalator on one database
    (a path or URL: `database_url` for each backend): opening it again is a restart.
    `channels`: more channels besides the duty-room push (and the webhook); `with_roster`:
    escalation resolves roles from the duty roster (`Parts.roster`)."""
    registry = Registry(load_site(DEFAULT_SITE))
    config = config or load_rules(DEFAULT_RULES)
    db = await Database.open(database, clock=clock)
    hub = LiveHub()
    every: dict[str, Channel] = {"push": PushChannel(hub), **(channels or {})}
    webhook = WebhookChannel(webhook_url, timeout_s=2) if webhook_url else None
    if webhook is not None:
        every["webhook"] = webhook
    try:
        book = AlarmBook(db, registry)
        core = RulesCore(
            config, devices=registry.devices(), gateways=registry.gateways(), now=clock()
        )
        core.restore(await book.open_keys())
        notifications = NotificationLog(db)
        announcer = Announcer(db, hub, notifications)
        roster = Roster(db, registry, Audit(db))
        escalator = Escalator(
            db=db,
            registry=registry,
            rules=lambda: config,
            channels=every,
            notifications=notifications,
            on_change=announcer.changed,
            case_url=case_url,
            roster=roster if with_roster else None,
        )
        announcer.on_new_alarms = escalator.wake
        yield Parts(
            db,
            book,
            AlarmQueries(db),
            Casework(db),
            core,
            escalator,
            notifications,
            announcer,
            hub,
            registry,
            config,
            roster,
        )
    finally:
        if webhook is not None:
            await webhook.close()
        await db.close()


async def gateway_with_last_will(
    port: int, gateway: str, password: str, will: str
) -> asyncio.subprocess.Process:
    """`mosquitto_sub` connected as the gateway, subscribed to its commands, with a retained
    last will on its status (`will`): kill it like a power cut and the broker sends the will."""
    return await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        "-h", "127.0.0.1",
        "-p", str(port),
        "-u", gateway,
        "-P", password,
        "-t", f"sc/v1/{gateway}/cmd/#",
        "--will-topic", f"sc/v1/{gateway}/status",
        "--will-payload", will,
        "--will-retain",
        "--will-qos", "1",
        "-q", "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def record(book: AlarmBook, arrival: Arrival, decide: Callable[[], Evaluation]) -> None:
    """One message into the alarm book as ingest puts it there: the rules are asked only if
    the book has not got its id, and what they decide is stored with it."""
    [new] = await book.unseen([arrival])
    [result] = await book.record([(arrival, decide()) if new else None])
    if isinstance(result, Exception):
        raise result
