"""Dependencies shared by the routers: the cloud's parts and the signed-in user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status

from cloud.access.sessions import SessionRef
from cloud.access.users import DUTY_ROLES, Role, User
from cloud.parts import Cloud


def get_cloud(request: Request) -> Cloud:
    return request.app.state.cloud  # type: ignore[no-any-return]


CloudDep = Annotated[Cloud, Depends(get_cloud)]

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
    values = [request.session.get(k) for k in ("user", "key", "sid")]
    if not all(isinstance(v, str) for v in values):
        return None
    name, key, session_id = values
    return SessionRef(name, key, session_id)


async def session_user(request: Request, cloud: Cloud) -> User | None:
    """The user of this request's session cookie; None (and the cookie cleared) if there is
    none or it was ended: signed out (here or everywhere), password reset, account disabled."""
    session = session_ref(request)
    user = await cloud.users.session_user(session) if session is not None else None
    if user is None and request.session:
        request.session.clear()
    return user


async def current_user(request: Request, cloud: CloudDep) -> User:
    user = await session_user(request, cloud)
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
