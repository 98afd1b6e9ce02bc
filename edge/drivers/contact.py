"""Detectors with dry-contact outputs: smoke alarms, water-leak detectors, circuit monitors.

- Alarm contact(s) (`alarm`; for a circuit `overcurrent` and/or `residual`): the first one
  asserted is an `alarm`, all released again a `clear`.
- `fault` (normally closed: a cut wire is a fault too) → `fault`, closed again → `restore`.
- `battery_low` → `battery_low`; `tamper` (the cover is off) → `tamper`.
- Smoke alarms with a `test` output: the alarm contact closes during the alarm's self-test;
  while the test output is active that is one `test` event, never an alarm.
- Smoke alarms with their remote hush input wired (pin role `hush`, an output of ours):
  `hush(duration_s)` holds it active for that long, only while in alarm; when the time is up
  the output is released and, if the alarm contact is still closed (the smoke persists), the
  alarm is reported again. A clear ends the hush early.

A detector already in alarm, fault, low battery or tamper when the gateway starts is
reported at once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from contract.devices import ContactDetectorModel, SmokeModel
from contract.hush import cannot_hush
from contract.models import EventType
from contract.site import DeviceSpec
from edge.drivers.base import DeviceEvent, HushRefused, Sink
from edge.drivers.gpio import DigitalInput, Edge, Output
from edge.scheduler import Scheduler, Timer

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
        self._scheduler = scheduler
        self._inputs: dict[str, DigitalInput] = {}
        self._hush_output: Output | None = None
        self._hush_timer: Timer | None = None
        self._hush_ends = 0.0
        self._cannot_hush = cannot_hush(model, spec.pins)
        try:
            if isinstance(model, SmokeModel) and "hush" in spec.pins:
                self._hush_output = Output(
                    spec.pins["hush"],
                    active_high=model.hush_active_high,
                    pin_factory=pin_factory,
                )
            for role in spec.pins:
                if role == "hush":
                    continue
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
        if self._hush_timer is not None:
            self._hush_timer.cancel()
            self._hush_timer = None
        if self._hush_output is not None:
            self._hush_output.close()
            self._hush_output = None
        for contact in self._inputs.values():
            contact.close()
        self._inputs.clear()

    # -- remote hush (any thread) --------------------------------------------------------------

    @property
    def hushed(self) -> bool:
        return self._hush_timer is not None

    def hush(self, duration_s: float) -> str:
        """Silence the alarm for `duration_s` seconds; HushRefused says why not."""
        return self._scheduler.run_sync(self._hush, duration_s)

    def _hush(self, duration_s: float) -> str:
        if self._cannot_hush is not None or self._hush_output is None:
            raise HushRefused(self._cannot_hush[1] if self._cannot_hush else "no hush output")
        if not self._alarm_sent:
            raise HushRefused("the smoke alarm is not in alarm: nothing to hush")
        if self._hush_timer is not None:
            left = self._hush_ends - self._scheduler.clock()
            raise HushRefused(f"already hushed, {max(0.0, left):.0f} s left")
        self._hush_output.on()
        self._hush_ends = self._scheduler.clock() + duration_s
        self._hush_timer = self._scheduler.call_later(duration_s, self._hush_over)
        log.info("hushed device=%s for=%ss", self.device_id, duration_s)
        return (
            f"hushed for {duration_s:g} s (hush output on); it sounds again afterwards "
            "if the smoke persists"
        )

    def _end_hush(self) -> None:
        if self._hush_timer is not None:
            self._hush_timer.cancel()
            self._hush_timer = None
        if self._hush_output is not None:
            self._hush_output.off()

    def _hush_over(self) -> None:
        self._end_hush()
        if any(self._asserted(r) for r in self._alarm_roles):
            self._emit(EventType.ALARM, Edge.now(), "smoke persists after the hush: alarm again")
        else:
            log.info("hush over device=%s", self.device_id)

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
            self._end_hush()
            self._emit(EventType.CLEAR, edge, f"{role} contact released")

    def _emit(self, type_: EventType, edge: Edge, detail: str = "") -> None:
        self._sink.event(
            DeviceEvent(self.device_id, self.model.kind, type_, ts=edge.wall, detail=detail)
        )
