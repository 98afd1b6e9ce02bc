"""The demo's simulator over HTTP (cloud/simulation.py): what it can act on, and one injection
at a time. Supervisors and admins only; every injection is audited (`sim_inject`). A cloud
without a simulator — every production cloud — answers 404 to both routes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud.simulation import Injected, Injection, SimPanel
from cloud.web.deps import AuditDep, SimulatorDep, SimulatorUser


class Refusal(BaseModel):
    detail: str = Field(description="Why (Chinese / English)")
    zh: str | None = None
    en: str | None = None


router = APIRouter(
    prefix="/api/sim",
    tags=["simulator (demo only)"],
    responses={
        401: {"model": Refusal, "description": "not signed in"},
        403: {"model": Refusal, "description": "supervisors and admins only"},
        404: {"model": Refusal, "description": "no simulator in this cloud (not the demo)"},
    },
)


@router.get("", response_model=SimPanel)
async def panel(user: SimulatorUser, simulator: SimulatorDep) -> SimPanel:
    """The gateways and devices the simulator can act on, each with its actions."""
    return simulator.panel()


@router.post("/inject", response_model=Injected)
async def inject(
    body: Injection, user: SimulatorUser, simulator: SimulatorDep, audit: AuditDep
) -> Injected:
    """Do one thing to the simulated community (it takes the real path: the simulated device
    below its driver, the gateway, MQTT, the rules, the board). Answers what was done."""
    done = await simulator.inject(body)
    where = "/".join(part for part in (body.gateway, body.device) if part)
    value = f" {body.value:g} %LEL" if body.value is not None else ""
    await audit.record(user.name, "sim_inject", f"{body.action.value} {where}{value}".strip())
    return done
