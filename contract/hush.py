"""Remote hush (远程消音) of a smoke alarm: the `cmd/hush` command's name, arguments and limits,
and which device models can be hushed at all. Both sides import it: the cloud refuses to ask a
device that cannot, the gateway refuses what the cloud should not have sent.

A hush silences a sounding smoke alarm for a limited time only (`MAX_HUSH_S`); when the time
is up the detector sounds again if the smoke is still there, and the gateway reports the
alarm again. What may ask for it, and when, is the cloud's part (cloud/alarms/hush.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from contract.devices import DeviceModelBase, SmokeModel, ZigbeeModel

#: The command topic's name: `sc/v1/{gw}/cmd/hush`.
COMMAND = "hush"
#: How long a hush lasts unless asked otherwise, and the longest and shortest allowed (s).
DEFAULT_HUSH_S = 300
MAX_HUSH_S = 600
MIN_HUSH_S = 10


class HushArgs(BaseModel):
    """The `args` of `cmd/hush` (the command's `device` is the smoke alarm)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    duration_s: int = Field(
        DEFAULT_HUSH_S,
        ge=MIN_HUSH_S,
        le=MAX_HUSH_S,
        description="How long the alarm stays silent; it sounds again afterwards if smoke persists",
    )


def cannot_hush(model: DeviceModelBase, pins: Mapping[str, int]) -> tuple[str, str] | None:
    """Why a device of `model` wired with `pins` cannot be hushed remotely, in Chinese and
    English; None if it can: a dry-contact smoke alarm with its hush input wired to the
    gateway, or a Zigbee smoke alarm whose model names its hush property."""
    if isinstance(model, SmokeModel):
        if "hush" in pins:
            return None
        return (
            "该烟雾报警器的消音输入未接到网关，无法远程消音",
            "this smoke alarm's hush input is not wired to the gateway: it cannot be hushed"
            " remotely",
        )
    if isinstance(model, ZigbeeModel) and model.kind.value == "smoke":
        if model.hush is not None:
            return None
        return (
            "该型号的 Zigbee 烟雾报警器不支持远程消音",
            "this Zigbee smoke alarm model has no remote hush",
        )
    return ("只有烟雾报警器可以远程消音", "only smoke alarms can be hushed remotely")
