"""An emergency drill's scripted incident (应急演练), injected at the gateway so that it takes
the real path (outbox, uplink, broker, ingest) as a device's event would: `cmd/drill` names
the device and what it does; the gateway sends it as that device's event carrying the drill's
number (`Event.drill`), and the cloud honours the number only for a drill running now that
covers the device (cloud/devices/maintenance.py). Real device signals never carry it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.models import EventType, Values

#: The command topic's name: `sc/v1/{gw}/cmd/drill`.
COMMAND = "drill"


class DrillIncident(BaseModel):
    """The `args` of `cmd/drill` (the command's `device` is where the incident happens): the
    drill's number, the event type, and any values by unit name (e.g. `ch4_pct_lel`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drill: int = Field(ge=1, le=2**53)
    type: EventType
    values: Values = Field(default_factory=Values)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> DrillIncident:
        """Read `args` (flat: `drill`, `type`, then unit names); ValidationError says why."""
        rest = {k: v for k, v in args.items() if k not in ("drill", "type")}
        return cls.model_validate(
            {"drill": args.get("drill"), "type": args.get("type"), "values": rest}, strict=False
        )

    def args(self) -> dict[str, str | int | float | bool]:
        return {"drill": self.drill, "type": self.type.value, **self.values.present()}


__all__ = ["COMMAND", "DrillIncident", "ValidationError"]
