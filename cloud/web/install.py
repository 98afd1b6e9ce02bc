"""The installer's API: claim codes and the claim itself (provisioning a gateway on site), and
the live view of a walk test (which devices were heard, with their latest reading, battery and
signal). Installers see homes by name, never residents.

`POST /api/provision/claim` is the one route besides /health and /api/login that needs no
session: the one-time claim code is the credential (limited and recorded, cloud/access/claims.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud.access.claims import ClaimFailure, ClaimLimited, ClaimRefusal, ClaimRefused, IssuedCode
from cloud.access.credentials import BrokerNotUpdated, CredentialInfo, InvalidGateway
from cloud.access.provisioning import BundleError, prepare
from cloud.alarms.model import Mode
from cloud.devices.expectations import model_facts
from cloud.devices.maintenance import Window
from cloud.parts import Cloud
from cloud.telemetry.base import StoreError
from cloud.web.deps import CloudDep, InstallerUser, ProvisionerUser, ReaderUser, RowId
from cloud.web.maintenance import TestAlarm
from contract.models import GatewayId, Kind
from contract.provisioning import ClaimRequest, ProvisioningBundle

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["installation"])


# ---- claim codes ---------------------------------------------------------------------------


class CodeRequest(BaseModel):
    gateway: GatewayId


class ClaimCode(IssuedCode):
    ttl_s: int = Field(description="Seconds the code lives from now")


class PendingInfo(BaseModel):
    created_by: str
    expires_at: datetime


class GatewayProvisioning(BaseModel):
    """A registered gateway as the installer picks it: where, how many devices, claimed?"""

    gateway: str
    building: str
    community: str
    grid: str
    devices: int
    credential: CredentialInfo | None
    pending_code: PendingInfo | None
    last_claimed_at: datetime | None
    state: str | None = Field(None, description="online / offline as last reported")
    last_seen: datetime | None = None


@router.post(
    "/provision/codes",
    response_model=ClaimCode,
    status_code=status.HTTP_201_CREATED,
    summary="Create a one-time claim code for a gateway (installers, admins)",
)
async def create_code(body: CodeRequest, cloud: CloudDep, user: ProvisionerUser) -> ClaimCode:
    if not cloud.registry.has_gateway(body.gateway):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no gateway {body.gateway!r}")
    issued = await cloud.claims.create(body.gateway, user.name)
    return ClaimCode(**issued.model_dump(), ttl_s=int(cloud.claims.ttl_s))


@router.get("/provision/gateways", response_model=list[GatewayProvisioning])
async def gateways(cloud: CloudDep, user: ProvisionerUser) -> list[GatewayProvisioning]:
    registry = cloud.registry
    credentials = {c.gateway: c for c in await cloud.credentials.all()}
    pending = await cloud.claims.pending()
    claimed = await cloud.claims.last_claimed()
    states = {str(g["id"]): g for g in await cloud.book.gateways()}
    out = []
    for spec in registry.site.gateways:
        place = registry.gateway_place(spec.id)
        code = pending.get(spec.id)
        seen = states.get(spec.id)
        out.append(
            GatewayProvisioning(
                gateway=spec.id,
                building=place.building if place else spec.building,
                community=place.community if place else "",
                grid=place.grid if place else "",
                devices=len(spec.devices),
                credential=credentials.get(spec.id),
                pending_code=PendingInfo(created_by=code.created_by, expires_at=code.expires_at)
                if code
                else None,
                last_claimed_at=claimed.get(spec.id),
                state=str(seen["state"]) if seen else None,
                last_seen=seen["last_seen"] if seen else None,  # type: ignore[arg-type]
            )
        )
    return out


class Problem(BaseModel):
    detail: str


@router.post(
    "/provision/gateways/{gateway_id}/revoke",
    response_model=CredentialInfo,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    summary="Revoke a gateway's broker credential (a lost or stolen box)",
)
async def revoke(gateway_id: str, cloud: CloudDep, user: ProvisionerUser) -> CredentialInfo:
    """The gateway can no longer connect and a connected session is cut; its history and
    device bindings stay. Claiming it again with a new code gives it a new credential."""
    # a gateway gone from the registry may still hold a credential: that one can be revoked
    known = await cloud.credentials.info(gateway_id) is not None
    if not known and not cloud.registry.has_gateway(gateway_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no gateway {gateway_id!r}")
    try:
        await cloud.credentials.revoke(gateway_id, user.name)
    except InvalidGateway as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except BrokerNotUpdated as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"revoked in the registry, but the broker could not be told yet: {exc}",
        ) from None
    info = await cloud.credentials.info(gateway_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"gateway {gateway_id!r} was never claimed")
    return info


@router.get("/provision/failures", response_model=list[ClaimFailure])
async def failures(cloud: CloudDep, user: ReaderUser) -> list[ClaimFailure]:
    """Refused claim codes, newest first (supervisors and admins)."""
    return await cloud.claims.failures()


_STATUS = {
    ClaimRefusal.MALFORMED: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ClaimRefusal.UNKNOWN: status.HTTP_403_FORBIDDEN,
    ClaimRefusal.EXPIRED: status.HTTP_410_GONE,
    ClaimRefusal.USED: status.HTTP_410_GONE,
    ClaimRefusal.REPLACED: status.HTTP_410_GONE,
    ClaimRefusal.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
}


def _refused(
    reason: ClaimRefusal, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"detail": message, "reason": reason.value},
        status_code=_STATUS[reason],
        headers={"X-Claim-Error": reason.value, **(headers or {})},
    )


class Refused(BaseModel):
    detail: str
    reason: ClaimRefusal


@router.post(
    "/provision/claim",
    response_model=ProvisioningBundle,
    summary="A gateway claims itself with a one-time code (no session: the code is the token)",
    responses={
        403: {"model": Refused, "description": "code not recognised"},
        409: {"model": Refused, "description": "the gateway can no longer be provisioned"},
        410: {"model": Refused, "description": "code expired, already used, or replaced"},
        422: {"description": "not a claim code"},
        429: {"model": Refused, "description": "too many wrong codes; see Retry-After"},
        503: {"description": "the broker could not be told; the code stays usable"},
    },
)
async def claim(
    body: ClaimRequest, request: Request, cloud: CloudDep
) -> ProvisioningBundle | JSONResponse:
    """The answer holds the gateway's new broker password: it is shown this once. Claiming
    again (with a new code) rotates it and revokes the earlier one. Every refused code is
    recorded; wrong codes are limited per client address and for everyone together."""
    client = request.client.host if request.client else "unknown"
    try:
        redeemed = await cloud.claims.redeem(body.code, client)
    except ClaimLimited as exc:
        return _refused(exc.reason, exc.message, {"Retry-After": str(exc.retry_after_s)})
    except ClaimRefused as exc:
        return _refused(exc.reason, exc.message)
    gateway = redeemed.gateway
    actor = f"claim:{redeemed.created_by}"
    try:
        prepared = await prepare(cloud.settings, cloud.registry.site, gateway)
    except BundleError as exc:
        # nothing was issued: the code stays usable once the cause is mended
        await cloud.claims.release(redeemed, f"no bundle: {exc}")
        await cloud.audit.record(actor, "claim.failed", f"gateway={gateway}: {exc}")
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    try:
        credential = await cloud.credentials.issue(gateway, actor)
    except BrokerNotUpdated as exc:
        # the new password is recorded but the broker does not know it, and the gateway will
        # never see it: let the installer claim again with the same code once it is back
        log.error("claim: broker not updated gateway=%s error=%r", gateway, str(exc))
        await cloud.claims.release(redeemed, f"broker not updated: {exc}")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the broker could not be updated; try the same code again in a minute",
        ) from None
    except InvalidGateway as exc:
        await cloud.audit.record(actor, "claim.failed", f"gateway={gateway}: {exc}")
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await cloud.audit.record(actor, "claim.provisioned", f"gateway={gateway} client={client}")
    return prepared.bundle(credential)


# ---- the live view of a walk test ------------------------------------------------------------


#: Telemetry fields shown per device kind (battery and signal for every kind).
FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.AIR: ("pm25_ugm3", "pm10_ugm3", "co2_ppm", "hcho_mgm3", "tvoc_mgm3", "temp_c", "rh_pct"),
    Kind.GAS: ("ch4_pct_lel",),
    Kind.POWER: ("current_a", "residual_ma"),
}
COMMON_FIELDS = ("battery_pct", "rssi_dbm")


class LiveDevice(BaseModel):
    device: str
    model: str
    kind: Kind | None
    home: str = Field(description="The home's name (never its residents)")
    seen: bool
    events: int
    last_type: str | None
    last_at: datetime | None
    values: dict[str, float] = Field(description="Latest value of each field in the test")
    values_at: datetime | None
    battery_pct: float | None
    rssi_dbm: float | None


class WalkTestLive(BaseModel):
    window: Window
    devices: list[LiveDevice]
    seen: int
    never_seen: list[str]
    alarms: list[TestAlarm]


async def _readings(
    cloud: Cloud, gateway: str, start: datetime, end: datetime
) -> dict[str, dict[str, tuple[datetime, float]]]:
    """device → field → the newest reading since the test began: one query for the gateway."""
    try:
        points = await cloud.store.latest(since=start)
    except StoreError as exc:
        log.warning("walk test: telemetry not read gateway=%s error=%r", gateway, str(exc))
        return {}
    found: dict[str, dict[str, tuple[datetime, float]]] = {}
    for point in points:
        if point.gateway == gateway and point.ts <= end:
            found.setdefault(point.device, {})[point.field] = (point.ts, point.value)
    return found


def _fields(kind: Kind | None) -> tuple[str, ...]:
    return (*FIELDS.get(kind, ()), *COMMON_FIELDS) if kind else (*COMMON_FIELDS,)


@router.get("/walktests/{window_id}/live", response_model=WalkTestLive)
async def walk_test_live(window_id: RowId, cloud: CloudDep, user: InstallerUser) -> WalkTestLive:
    """What the installer watches during a walk test (poll it every few seconds): every
    device of the test, whether it was heard since the test began, its latest event and its
    latest reading, battery and signal (from events and telemetry)."""
    window = await cloud.maintenance.get(window_id)
    if window.mode is not Mode.WALK_TEST:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"#{window_id} is not a walk test")
    start = window.starts_at
    end = min(window.ended_at or window.ends_at, datetime.now(UTC))
    events = await cloud.alarms.events_of(window.gateway, start.timestamp(), end.timestamp())
    by_device: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_device.setdefault(str(event["device"]), []).append(event)
    registry = cloud.registry
    latest = await _readings(cloud, window.gateway, start, end + timedelta(seconds=1))
    models = [m for (g, _), m in registry.devices().items() if g == window.gateway]
    facts = await asyncio.to_thread(model_facts, models)
    devices: list[LiveDevice] = []
    for (gateway, device), model in sorted(registry.devices().items()):
        if gateway != window.gateway or (window.devices and device not in window.devices):
            continue
        info = registry.device(gateway, device)
        kind = Kind(facts[model].kind) if facts[model].kind else None
        mine = by_device.get(device, [])
        values: dict[str, tuple[datetime, float]] = {}
        for event in mine:
            at = datetime.fromtimestamp(float(event["received_at"]), UTC)  # type: ignore[arg-type]
            for name, value in json.loads(str(event["values"]) or "{}").items():
                if value is not None:
                    values[name] = (at, float(value))
        wanted = _fields(kind)
        readings = {f: v for f, v in latest.get(device, {}).items() if f in wanted}
        for name, (at, value) in readings.items():
            if name not in values or values[name][0] <= at:
                values[name] = (at, value)
        last = mine[-1] if mine else None
        devices.append(
            LiveDevice(
                device=device,
                model=model,
                kind=kind,
                home=info.place.home if info else "",
                seen=bool(mine or readings),
                events=len(mine),
                last_type=str(last["type"]) if last else None,
                last_at=datetime.fromtimestamp(float(last["received_at"]), UTC)  # type: ignore[arg-type]
                if last
                else None,
                values={name: value for name, (_, value) in sorted(values.items())},
                values_at=max((at for at, _ in values.values()), default=None),
                battery_pct=values["battery_pct"][1] if "battery_pct" in values else None,
                rssi_dbm=values["rssi_dbm"][1] if "rssi_dbm" in values else None,
            )
        )
    alarms = await cloud.alarms.in_window(window_id)
    return WalkTestLive(
        window=window,
        devices=devices,
        seen=sum(d.seen for d in devices),
        never_seen=[d.device for d in devices if not d.seen],
        alarms=[TestAlarm.model_validate(a.model_dump()) for a in alarms],
    )
