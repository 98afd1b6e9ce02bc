"""The demo's simulator as the cloud sees it: what a visitor (or, later, a drill) may do to the
simulated devices of the demo's gateways — press a call button, trip or reset a smoke alarm,
set the methane level, cut or restore a gateway's link — and replay the demo's scenario.

The cloud only defines the injection API here; the demo (sim/panel.py) implements it on the
simulated hardware *below the drivers* of its gateways and on a relay in front of its broker,
so every injection takes the real path: driver → gateway agent → MQTT → ingest → rules → board.

Only a cloud started with `simulator=True` (SC_CLOUD_SIMULATOR, which a production cloud
refuses to start with, cloud/settings.py) and given a simulator serves it; any other answers
404 to every simulator route (cloud/web/simulator.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, Self

from pydantic import BaseModel, Field, model_validator

from contract.models import DeviceId, GatewayId


class SimAction(StrEnum):
    PRESS_CALL = "press_call"  # a call button pressed (the resident asks for help)
    SMOKE_ALARM = "smoke_alarm"  # a smoke alarm's contact closes
    SMOKE_CLEAR = "smoke_clear"  # …and opens again (the alarm is reset)
    METHANE = "methane"  # a methane detector reads `value` % LEL
    CUT_LINK = "cut_link"  # the gateway's network goes (its connection to the broker dies)
    RESTORE_LINK = "restore_link"  # …and comes back
    REPLAY = "replay"  # the demo's scripted scenario, from its start


#: The actions on one device, by the device's kind.
DEVICE_ACTIONS: dict[str, tuple[SimAction, ...]] = {
    "call": (SimAction.PRESS_CALL,),
    "smoke": (SimAction.SMOKE_ALARM, SimAction.SMOKE_CLEAR),
    "gas": (SimAction.METHANE,),
}
GATEWAY_ACTIONS = (SimAction.CUT_LINK, SimAction.RESTORE_LINK)


class Injection(BaseModel):
    """One thing done to the simulated community."""

    action: SimAction
    gateway: GatewayId | None = Field(None, description="for device and link actions")
    device: DeviceId | None = Field(None, description="for device actions")
    value: float | None = Field(
        None, ge=0, le=100, description="methane: the level the detector reads, % LEL"
    )

    @model_validator(mode="after")
    def _what_each_action_needs(self) -> Self:
        on_device = any(self.action in actions for actions in DEVICE_ACTIONS.values())
        if (on_device or self.action in GATEWAY_ACTIONS) and self.gateway is None:
            raise ValueError(f"{self.action.value} needs the gateway")
        if on_device and self.device is None:
            raise ValueError(f"{self.action.value} needs the device")
        if (self.action is SimAction.METHANE) != (self.value is not None):
            raise ValueError("a value (% LEL) goes with methane, and only with it")
        return self


class SimDevice(BaseModel):
    gateway: str
    device: str
    kind: str
    building: str
    home: str
    actions: list[SimAction]


class SimGateway(BaseModel):
    gateway: str
    building: str
    link_up: bool


class SimPanel(BaseModel):
    """What the simulator can act on now."""

    gateways: list[SimGateway]
    devices: list[SimDevice]


class Injected(BaseModel):
    """What an injection did, in both languages (the demo's terminal says it too)."""

    action: SimAction
    zh: str
    en: str


class Simulator(Protocol):
    """Implemented by the demo (sim/panel.py). An injection that names an unknown gateway or
    device, or an action the device does not have, raises `cloud.errors.NotFound` or
    `Refused` with the reason in both languages."""

    def panel(self) -> SimPanel: ...

    async def inject(self, injection: Injection) -> Injected: ...
