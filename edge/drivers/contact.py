"""Detectors with dry-contact outputs: smoke alarms, water-leak detectors, circuit monitors.

- Alarm contact(s) (`alarm`; for a circuit `overcurrent` and/or `residual`): the first one
  asserted is an `alarm`, all released again a `clear`.
- `fault` (normally closed: a cut wire is a fault too) → `fault`, closed again → `restore`.
- `battery_low` → `battery_low`; `tamper` (the cover is off) → `tamper`.
- Smoke alarms with a `test` output: the alarm contact closes during the alarm's self-test;
  while the test output is active that is one `test` event, never an alarm.

A detector already in alarm, fault, low battery or tamper when the gateway starts is
reported at once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from contract.devices import ContactDetectorModel
from contract.models import EventType
from contract.site import DeviceSpec
from edge.drivers.base import DeviceEvent, Sink
from edge.drivers.gpio import DigitalInput, Edge
from edge.scheduler import Scheduler

log = logging.getLogger(__name__)

#: Condition contacts: role → (event when asserted, event when released or None).
_CONDITIONS: dict[str, tuple[EventType, EventType | None]] = {
    "fault": (EventType.FAULT, EventType.RESTORE),
    "battery_low": (EventType.BATTERY_LOW, None),
    "tamper": (EventType.TAMPER, None),
}


class ContactDetector:
    def __init__(
        self,
        spec: DeviceSpec,
        model: ContactDetectorModel,
        *,
        scheduler: Scheduler,
        sink: Sink,
        pin_factory: Any = None,
    ):
        self.device_id = spec.id
        self.model = model
        self._sink = sink
        self._inputs: dict[str, DigitalInput] = {}
        try:
            for role in spec.pins:
                settings = model.contact(role)
                self._inputs[role] = DigitalInput(
                    spec.pins[role],
                    active_low=settings.active_low,
                    pull_up=settings.pull_up,
                    bounce_s=model.bounce_s,
                    scheduler=scheduler,
                    on_change=functools.partial(self._on_change, role),
                    pin_factory=pin_factory,
                )
        except Exception:
            self.close()
            raise
        self._alarm_roles = [r for r in model.alarm_roles if r in self._inputs]
        self._alarm_sent = False
        self._test_sent = False

    # -- state -------------------------------------------------------------------------------

    @property
    def in_alarm(self) -> bool:
        return self._alarm_sent

    @property
    def faulted(self) -> bool:
        return self._asserted("fault")

    def _asserted(self, role: str) -> bool:
        contact = self._inputs.get(role)
        return contact is not None and contact.asserted

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        started = {role: contact.start() for role, contact in self._inputs.items()}
        now = Edge.now()
        if started.get("test"):
            self._on_change("test", True, now, "in test at start")
        else:
            for role in self._alarm_roles:
                if started[role]:
                    self._on_change(role, True, now, "in alarm at start")
                    break
        for role in _CONDITIONS:
            if started.get(role):
                self._on_change(role, True, now, f"{role} contact active at start")

    def close(self) -> None:
        for contact in self._inputs.values():
            contact.close()
        self._inputs.clear()

    # -- scheduler thread --------------------------------------------------------------------

    def _on_change(self, role: str, asserted: bool, edge: Edge, detail: str = "") -> None:
        if role in _CONDITIONS:
            on, off = _CONDITIONS[role]
            type_ = on if asserted else off
            if type_ is None:
                log.info("%s contact released device=%s", role, self.device_id)
                return
            self._emit(type_, edge, detail or f"{role} contact")
        elif role == "test":
            self._on_test(asserted, edge, detail)
        else:
            self._on_alarm_contact(role, asserted, edge, detail)

    def _on_test(self, asserted: bool, edge: Edge, detail: str) -> None:
        if asserted:
            if not self._test_sent:
                self._test_sent = True
                self._emit(EventType.TEST, edge, detail or "self-test")
            return
        self._test_sent = False
        # The test is over; an alarm contact still closed now is a real alarm.
        active = [r for r in self._alarm_roles if self._asserted(r)]
        if active and not self._alarm_sent:
            self._alarm_sent = True
            self._emit(EventType.ALARM, edge, f"{active[0]} contact after the test")

    def _on_alarm_contact(self, role: str, asserted: bool, edge: Edge, detail: str) -> None:
        if self._asserted("test"):
            log.info("alarm contact during a self-test device=%s role=%s", self.device_id, role)
            return
        if asserted and not self._alarm_sent:
            self._alarm_sent = True
            self._emit(EventType.ALARM, edge, detail or f"{role} contact")
        elif not asserted and self._alarm_sent:
            if any(self._asserted(r) for r in self._alarm_roles):
                return  # another alarm contact is still active
            self._alarm_sent = False
            self._emit(EventType.CLEAR, edge, f"{role} contact released")

    def _emit(self, type_: EventType, edge: Edge, detail: str = "") -> None:
        self._sink.event(
            DeviceEvent(self.device_id, self.model.kind, type_, ts=edge.wall, detail=detail)
        )
