"""Dependencies shared by the routers: the cloud's services, each as a typed dependency read
from the app's `Services` (so a router's signature says what it uses), and the signed-in user
with the roles each route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Path, Request, status

from cloud.access.audit import Audit
from cloud.access.sessions import SessionRef
from cloud.access.users import DUTY_ROLES, Role, User, Users
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
from cloud.errors import NotFound
from cloud.ingest.pipeline import Ingest
from cloud.ingest.rejects import RejectLog
from cloud.ledger.service import Ledger
from cloud.live.hub import LiveHub
from cloud.notify.announce import Announcer
from cloud.notify.log import NotificationLog
from cloud.notify.receipts import CallResults
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
from cloud.web.services import Services

T = TypeVar("T")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _service(get: Callable[[Services], T]) -> Callable[[Request], T]:
    def dependency(request: Request) -> T:
        return get(services(request))

    return dependency


SettingsDep = Annotated[CloudSettings, Depends(_service(lambda s: s.settings))]
UsersDep = Annotated[Users, Depends(_service(lambda s: s.users))]
AuditDep = Annotated[Audit, Depends(_service(lambda s: s.audit))]
AlarmsDep = Annotated[AlarmQueries, Depends(_service(lambda s: s.alarms))]
CasesDep = Annotated[CaseActions, Depends(_service(lambda s: s.cases))]
HushDep = Annotated[Hush, Depends(_service(lambda s: s.hush))]
NotificationsDep = Annotated[NotificationLog, Depends(_service(lambda s: s.notifications))]
CallResultsDep = Annotated[CallResults, Depends(_service(lambda s: s.call_results))]
ResidentsDep = Annotated[ResidentReads, Depends(_service(lambda s: s.residents))]
HubDep = Annotated[LiveHub, Depends(_service(lambda s: s.hub))]
BrokerLinkDep = Annotated[BrokerLink, Depends(_service(lambda s: s.link))]
IngestDep = Annotated[Ingest, Depends(_service(lambda s: s.ingest))]
AnnouncerDep = Annotated[Announcer, Depends(_service(lambda s: s.announcer))]
EscalatorDep = Annotated[Escalator, Depends(_service(lambda s: s.escalator))]
RejectsDep = Annotated[RejectLog, Depends(_service(lambda s: s.rejects))]
BookDep = Annotated[AlarmBook, Depends(_service(lambda s: s.book))]
StoreDep = Annotated[TelemetryStore, Depends(_service(lambda s: s.store))]
ReloaderDep = Annotated[RulesReloader, Depends(_service(lambda s: s.reloader))]
WindowsDep = Annotated[Windows, Depends(_service(lambda s: s.windows))]
DrillsDep = Annotated[DrillIncidents, Depends(_service(lambda s: s.drills))]
WalkTestsDep = Annotated[WalkTestReports, Depends(_service(lambda s: s.walk_tests))]
DrillReportsDep = Annotated[DrillReports, Depends(_service(lambda s: s.drill_reports))]
InstallationDep = Annotated[Installation, Depends(_service(lambda s: s.installation))]
HealthDep = Annotated[HealthReports, Depends(_service(lambda s: s.health))]
TrendsDep = Annotated[Trends, Depends(_service(lambda s: s.trends))]
LedgerDep = Annotated[Ledger, Depends(_service(lambda s: s.ledger))]
RegistryDep = Annotated[Registry, Depends(_service(lambda s: s.registry))]
SiteDep = Annotated[SiteService, Depends(_service(lambda s: s.site))]
VoiceDep = Annotated[VoiceDesk, Depends(_service(lambda s: s.voice))]
ConfigPushDep = Annotated[ConfigPush, Depends(_service(lambda s: s.config_push))]
DutyDeskDep = Annotated[DutyDesk, Depends(_service(lambda s: s.duty))]
GridCasesDep = Annotated[GridCases, Depends(_service(lambda s: s.grid_cases))]

#: A row number in a path (alarm, window): SQLite's integers end at 2**63 - 1, so a larger one
#: is refused as invalid rather than reaching the database.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def start_session(request: Request, session: SessionRef) -> None:
    """Put a new session in the cookie (anything before in it goes)."""
    request.session.clear()
    request.session.update({"user": session.name, "key": session.key, "sid": session.session_id})


def session_ref(request: Request) -> SessionRef | None:
    """The session the cookie names (not yet checked); None without one, or for a cookie
    made before sessions had their own ids."""
    name, key, session_id = (request.session.get(k) for k in ("user", "key", "sid"))
    if not (isinstance(name, str) and isinstance(key, str) and isinstance(session_id, str)):
        return None
    return SessionRef(name, key, session_id)


async def session_user(request: Request, users: Users) -> User | None:
    """The user of this request's session cookie; None (and the cookie cleared) if there is
    none or it was ended: signed out (here or everywhere), password reset, account disabled."""
    session = session_ref(request)
    user = await users.session_user(session) if session is not None else None
    if user is None and request.session:
        request.session.clear()
    return user


async def current_user(request: Request, users: UsersDep) -> User:
    user = await session_user(request, users)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def duty_user(user: CurrentUser) -> User:
    if user.role not in DUTY_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} cannot handle alarms")
    return user


DutyUser = Annotated[User, Depends(duty_user)]


def _roles(*roles: Role, what: str) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} cannot {what}")
        return user

    return check


#: Supervisors verify closed cases (督办落实); admins may do anything.
SupervisorUser = Annotated[User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="verify cases"))]
AdminUser = Annotated[User, Depends(_roles(Role.ADMIN, what="change the rules"))]
#: Managing the duty-room accounts: admins only.
AccountAdmin = Annotated[User, Depends(_roles(Role.ADMIN, what="manage accounts"))]
#: The raw payloads of rejected messages (any gateway's untrusted bytes): admins only; the
#: counts are in /api/stats for everyone.
RejectsReader = Annotated[
    User, Depends(_roles(Role.ADMIN, what="read the payloads of rejected messages"))
]
#: Installers run walk tests on site; admins may too.
InstallerUser = Annotated[User, Depends(_roles(Role.INSTALLER, Role.ADMIN, what="run walk tests"))]
#: Installers claim gateways on site (claim codes); admins may too.
ProvisionerUser = Annotated[
    User, Depends(_roles(Role.INSTALLER, Role.ADMIN, what="provision gateways"))
]
#: Maintenance windows are planned by supervisors and admins.
PlannerUser = Annotated[
    User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="plan maintenance windows"))
]
#: Device health and trends: the duty room and the installers.
DeviceReader = Annotated[
    User,
    Depends(
        _roles(
            Role.OPERATOR,
            Role.SUPERVISOR,
            Role.ADMIN,
            Role.INSTALLER,
            what="read device health and trends",
        )
    ),
]
#: Reading the rules in force and the audit: supervisors and admins.
ReaderUser = Annotated[
    User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="read the rules and the audit"))
]
#: The site's structure, gateways and devices: installers (on site) and admins change them.
EditorUser = Annotated[User, Depends(_roles(Role.INSTALLER, Role.ADMIN, what="change the site"))]
#: Residents and their contacts are duty-room data: supervisors and admins change them.
ResidentEditorUser = Annotated[
    User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="change resident data"))
]
#: The demo's simulator panel: supervisors and admins (a leader showing the system).
SimulatorUser = Annotated[
    User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="use the demo's simulator"))
]


def _simulator(request: Request) -> Simulator:
    found = services(request).simulator
    if found is None:
        raise NotFound.said(
            "本系统未启用模拟器（仅演示环境提供）", "no simulator here (the demo only)"
        )
    return found


SimulatorDep = Annotated[Simulator, Depends(_simulator)]


#: The duty roster (排班): supervisors and admins edit it; the duty room reads it.
RosterEditorUser = Annotated[
    User, Depends(_roles(Role.SUPERVISOR, Role.ADMIN, what="edit the duty roster"))
]
#: The grid worker's phone page: their own cases only.
GridWorkerUser = Annotated[
    User, Depends(_roles(Role.GRID_WORKER, what="work a grid worker's cases"))
]
