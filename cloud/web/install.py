"""The installer's API: claim codes and the claim itself (provisioning a gateway on site), and
the live view of a walk test (which devices were heard, with their latest reading, battery and
signal). Installers see homes by name, never residents.

`POST /api/provision/claim` is the one route besides /health and /api/login that needs no
session: the one-time claim code is the credential (limited and recorded, cloud/access/claims.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from cloud.access.claims import ClaimFailure, ClaimRefusal
from cloud.access.credentials import CredentialInfo
from cloud.devices.installation import ClaimCode, GatewayProvisioning
from cloud.devices.walk_test_report import WalkTestLive
from cloud.web.deps import (
    InstallationDep,
    InstallerUser,
    ProvisionerUser,
    ReaderUser,
    RowId,
    WalkTestsDep,
)
from contract.models import GatewayId
from contract.provisioning import ClaimRequest, ProvisioningBundle

router = APIRouter(prefix="/api", tags=["installation"])


# ---- claim codes ---------------------------------------------------------------------------


class CodeRequest(BaseModel):
    gateway: GatewayId


@router.post(
    "/provision/codes",
    response_model=ClaimCode,
    status_code=status.HTTP_201_CREATED,
    summary="Create a one-time claim code for a gateway (installers, admins)",
)
async def create_code(
    body: CodeRequest, installation: InstallationDep, user: ProvisionerUser
) -> ClaimCode:
    return await installation.create_code(body.gateway, user.name)


@router.get("/provision/gateways", response_model=list[GatewayProvisioning])
async def gateways(
    installation: InstallationDep, user: ProvisionerUser
) -> list[GatewayProvisioning]:
    return await installation.gateways()


class Problem(BaseModel):
    detail: str


@router.post(
    "/provision/gateways/{gateway_id}/revoke",
    response_model=CredentialInfo,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    summary="Revoke a gateway's broker credential (a lost or stolen box)",
)
async def revoke(
    gateway_id: str, installation: InstallationDep, user: ProvisionerUser
) -> CredentialInfo:
    """The gateway can no longer connect and a connected session is cut; its history and
    device bindings stay. Claiming it again with a new code gives it a new credential."""
    return await installation.revoke(gateway_id, user.name)


@router.get("/provision/failures", response_model=list[ClaimFailure])
async def failures(installation: InstallationDep, user: ReaderUser) -> list[ClaimFailure]:
    """Refused claim codes, newest first (supervisors and admins)."""
    return await installation.failures()


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
    body: ClaimRequest, request: Request, installation: InstallationDep
) -> ProvisioningBundle:
    """The answer holds the gateway's new broker password: it is shown this once. Claiming
    again (with a new code) rotates it and revokes the earlier one. Every refused code is
    recorded; wrong codes are limited per client address and for everyone together."""
    # a refused code is answered with its reason (cloud/web/errors.py)
    client = request.client.host if request.client else "unknown"
    return await installation.claim(body.code, client)


# ---- the live view of a walk test ------------------------------------------------------------


@router.get("/walktests/{window_id}/live", response_model=WalkTestLive)
async def walk_test_live(
    window_id: RowId, walk_tests: WalkTestsDep, user: InstallerUser
) -> WalkTestLive:
    """What the installer watches during a walk test (poll it every few seconds): every
    device of the test, whether it was heard since the test began, its latest event and its
    latest reading, battery and signal (from events and telemetry)."""
    return await walk_tests.live(window_id)
