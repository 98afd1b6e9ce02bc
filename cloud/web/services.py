"""What the web app works with: the cloud's services, each router taking the ones it uses
through a typed dependency (cloud/web/deps.py). `create_app` (cloud/web/app.py) fills this
from the running cloud; nothing below it knows how the cloud is put together."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.access.audit import Audit
from cloud.access.users import Users
from cloud.alarms.actions import CaseActions
from cloud.alarms.book import AlarmBook
from cloud.alarms.hush import Hush
from cloud.alarms.queries import AlarmQueries
from cloud.devices.drills import DrillIncidents
from cloud.devices.health import HealthReports
from cloud.devices.installation import Installation
from cloud.devices.trends import Trends
from cloud.devices.walk_test_report import WalkTestReports
from cloud.devices.windows import Windows
from cloud.duty.desk import DutyDesk
from cloud.duty.drill_report import DrillReports
from cloud.duty.grid_cases import GridCases
from cloud.ingest.pipeline import Ingest
from cloud.ingest.rejects import RejectLog
from cloud.ledger.service import Ledger
from cloud.live.hub import LiveHub
from cloud.notify.announce import Announcer
from cloud.notify.log import NotificationLog
from cloud.notify.receipts import CallResults
from cloud.peers import Peers
from cloud.routing.escalation import Escalator
from cloud.rules.reload import RulesReloader
from cloud.settings import CloudSettings
from cloud.simulation import Simulator
from cloud.site.registry import Registry
from cloud.site.residents import ResidentReads
from cloud.site_changes.config_push import ConfigPush
from cloud.site_changes.service import SiteService
from cloud.telemetry.base import TelemetryStore
from cloud.transport.broker_link import BrokerLink
from cloud.voice.desk import VoiceDesk


@dataclass(frozen=True, kw_only=True)
class Services:
    settings: CloudSettings
    # accounts, sessions and the audit
    users: Users
    audit: Audit
    # alarms and their cases
    alarms: AlarmQueries
    cases: CaseActions
    hush: Hush
    notifications: NotificationLog
    call_results: CallResults  # the voice vendors' receipts
    residents: ResidentReads
    hub: LiveHub
    # how the cloud is doing (/health, /api/stats, rejected input, gateways, readings)
    link: BrokerLink
    ingest: Ingest
    announcer: Announcer
    escalator: Escalator
    rejects: RejectLog
    book: AlarmBook
    store: TelemetryStore
    # the rules in force
    reloader: RulesReloader
    # devices: walk tests and maintenance windows, installation, health, trends
    windows: Windows
    drills: DrillIncidents
    walk_tests: WalkTestReports
    drill_reports: DrillReports
    installation: Installation
    health: HealthReports
    trends: Trends
    # the ledger and its report
    ledger: Ledger
    # the site registry
    registry: Registry
    site: SiteService
    config_push: ConfigPush
    # the demo's simulator (None: not this cloud; cloud/web/simulator.py answers 404)
    simulator: Simulator | None = None
    # the duty desk: roster, handovers, check-ins (and the grid worker's cases)
    duty: DutyDesk
    grid_cases: GridCases
    # one-key voice: the calls between homes and the duty room
    voice: VoiceDesk
    # the other cloud processes on one PostgreSQL (None on SQLite)
    peers: Peers | None = None
