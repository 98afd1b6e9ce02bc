"""Commands from the cloud (`sc/v1/{gw}/cmd/{name}`), each answered with a Reply.

Anything wrong (bad JSON, unknown command, unknown device) is a Reply with ok=false and the
reason; nothing here raises into the MQTT client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping

from pydantic import ValidationError

from contract import drill, hush
from contract.models import Command, Kind, Reply, decode
from edge.config import GatewayConfig
from edge.drivers.base import DeviceEvent, Driver, HushRefused
from edge.drivers.call_button import CallButton
from edge.drivers.zigbee import ZigbeeDevice

log = logging.getLogger(__name__)

#: Reply id when the command's own id cannot be read (Reply.id is required by the contract).
UNREADABLE_ID = "unreadable-command-id"
_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")


class CommandError(Exception):
    """The command cannot be carried out; the message is the Reply's detail."""


def _call_accepted(command: Command, drivers: Mapping[str, Driver]) -> str:
    if command.device is None:
        raise CommandError("call_accepted needs 'device' (the call button)")
    driver = drivers.get(command.device)
    if driver is None:
        raise CommandError(f"no device {command.device!r} on this gateway")
    if isinstance(driver, CallButton) or (
        isinstance(driver, ZigbeeDevice) and driver.kind is Kind.CALL
    ):
        return driver.accept()
    raise CommandError(f"device {command.device!r} is not a call button")


def _hush(command: Command, drivers: Mapping[str, Driver]) -> str:
    """Silence a sounding smoke alarm for `args.duration_s` (contract/hush.py)."""
    if command.device is None:
        raise CommandError("hush needs 'device' (the smoke alarm)")
    driver = drivers.get(command.device)
    if driver is None:
        raise CommandError(f"no device {command.device!r} on this gateway")
    try:
        args = hush.HushArgs.model_validate(command.args)
    except ValidationError as exc:
        problems = "; ".join(
            f"args.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise CommandError(f"hush refused: {problems}") from None
    do_hush = getattr(driver, "hush", None)
    if do_hush is None:
        raise CommandError(f"hush refused: device {command.device!r} cannot be hushed remotely")
    try:
        result: str = do_hush(args.duration_s)
    except HushRefused as exc:
        raise CommandError(f"hush refused: {exc}") from None
    return result


def send_drill(command: Command, config: GatewayConfig, send: Callable[[DeviceEvent], None]) -> str:
    """A drill's scripted incident (`cmd/drill`, contract/drill.py): sent as the device's
    event, with the drill's number."""
    if command.device is None:
        raise CommandError("drill needs 'device' (where the incident happens)")
    try:
        model = config.model_of(command.device)
    except KeyError:
        raise CommandError(f"no device {command.device!r} on this gateway") from None
    try:
        incident = drill.DrillIncident.from_args(command.args)
    except ValidationError as exc:
        problems = "; ".join(
            f"args.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise CommandError(f"drill refused: {problems}") from None
    send(
        DeviceEvent(
            command.device,
            model.kind,
            incident.type,
            incident.values,
            detail=f"drill #{incident.drill}",
            drill=incident.drill,
        )
    )
    return f"drill #{incident.drill}: {incident.type.value} of {command.device} sent"


Handler = Callable[[Command, Mapping[str, Driver]], str]

HANDLERS: dict[str, Handler] = {
    "call_accepted": _call_accepted,
    hush.COMMAND: _hush,
}


def execute(
    gateway_id: str,
    name: str,
    payload: bytes,
    drivers: Mapping[str, Driver],
    *,
    retained: bool = False,
    extra: Mapping[str, Handler] | None = None,
) -> Reply:
    """Carry out one command and say how it went (`extra`: the agent's own handlers, such
    as `config`)."""
    command_id = _command_id(payload)

    def reply(ok: bool, detail: str) -> Reply:
        return Reply(id=command_id, gateway=gateway_id, ok=ok, detail=detail[:500])

    try:
        command = decode(Command, payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        return reply(False, f"invalid command {name!r}: {problems}")
    if retained:
        return reply(False, "retained commands are not carried out (publish with retain=false)")
    handlers = {**HANDLERS, **(extra or {})}
    handler = handlers.get(name)
    if handler is None:
        return reply(False, f"unknown command {name!r} (supported: {', '.join(sorted(handlers))})")
    try:
        return reply(True, handler(command, drivers))
    except CommandError as exc:
        return reply(False, str(exc))
    except Exception as exc:
        log.exception("command failed name=%s id=%s", name, command_id)
        return reply(False, f"command failed: {exc!r}")


def command_device(payload: bytes) -> str | None:
    """The `device` of a command payload already carried out (None if it has none)."""
    try:
        value = json.loads(payload).get("device")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _command_id(payload: bytes) -> str:
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return UNREADABLE_ID
    return value if isinstance(value, str) and _ID.match(value) else UNREADABLE_ID
