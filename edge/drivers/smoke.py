"""Smoke alarm with dry contacts: alarm contact → alarm / clear, fault contact → fault.

A detector already in alarm or fault when the gateway starts is reported at once.
"""

from __future__ import annotations

import logging
from typing import Any

from contract.models import EventType, Kind
from contract.site import DeviceSpec
from edge.config import SmokeModel
from edge.drivers.base import DeviceEvent, Sink
from edge.drivers.gpio import DigitalInput, Edge
from edge.scheduler import Scheduler

log = logging.getLogger(__name__)


class SmokeDetector:
    def __init__(
        self,
        spec: DeviceSpec,
        model: SmokeModel,
        *,
        scheduler: Scheduler,
        sink: Sink,
        pin_factory: Any = None,
    ):
        self.device_id = spec.id
        self._sink = sink

        def contact(role: str, on_change: Any) -> DigitalInput:
            settings = model.contact(role)
            return DigitalInput(
                spec.pins[role],
                active_low=settings.active_low,
                pull_up=settings.pull_up,
                bounce_s=model.bounce_s,
                scheduler=scheduler,
                on_change=on_change,
                pin_factory=pin_factory,
            )

        self._alarm = contact("alarm", self._on_alarm)
        self._fault = contact("fault", self._on_fault) if "fault" in spec.pins else None

    @property
    def in_alarm(self) -> bool:
        return self._alarm.asserted

    @property
    def faulted(self) -> bool:
        return self._fault is not None and self._fault.asserted

    def start(self) -> None:
        if self._alarm.start():
            self._emit(EventType.ALARM, Edge.now(), "in alarm at start")
        if self._fault is not None and self._fault.start():
            self._emit(EventType.FAULT, Edge.now(), "fault contact open at start")

    def close(self) -> None:
        self._alarm.close()
        if self._fault is not None:
            self._fault.close()

    def _on_alarm(self, asserted: bool, edge: Edge) -> None:
        self._emit(EventType.ALARM if asserted else EventType.CLEAR, edge)

    def _on_fault(self, asserted: bool, edge: Edge) -> None:
        if asserted:
            self._emit(EventType.FAULT, edge, "fault contact")
        else:
            # The contract has no "fault cleared" type yet; the cloud sees the next heartbeat.
            log.info("fault contact restored device=%s", self.device_id)

    def _emit(self, type_: EventType, edge: Edge, detail: str = "") -> None:
        self._sink.event(
            DeviceEvent(self.device_id, Kind.SMOKE, type_, ts=edge.wall, detail=detail)
        )
