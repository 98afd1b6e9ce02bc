"""Device supervision: a device that falls silent raises a fault, not silence.

Every device model may set `report_interval_s`. The `Supervisor` stands between the drivers
and the agent: whatever a device reports (an event other than a fault, a sample, or just
`alive()` for a valid frame, a Modbus reply, a radio message) counts as hearing from it. A
supervised device not heard from for longer than its interval gets one `fault` event; the
first report after that is preceded by a `restore` with how long it was silent
(`offline_s`). Time is monotonic (a clock step changes nothing) and injectable for tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from contract.models import EventType, Kind, Values
from edge.config import GatewayConfig
from edge.drivers.base import DeviceEvent, Reports, Sample
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    kind: Kind
    interval_s: float
    last_heard: float
    silent: bool = False


def report_intervals(config: GatewayConfig) -> dict[str, tuple[Kind, float]]:
    """device id → (kind, report interval) of every supervised device of a gateway."""
    intervals: dict[str, tuple[Kind, float]] = {}
    for spec in config.spec.devices:
        model = config.models[spec.model]
        if model.report_interval_s is not None:
            intervals[spec.id] = (model.kind, model.report_interval_s)
    return intervals


class Supervisor:
    """A Sink for the drivers that passes everything on to `out` and watches for silence."""

    def __init__(self, out: Reports, *, clock: Callable[[], float] = time.monotonic):
        self._out = out
        self._clock = clock
        self._lock = threading.Lock()
        self._watched: dict[str, _Watch] = {}
        self._timer: Timer | None = None
        self.faults = 0
        self.restores = 0
        #: how many times each device was heard from (every device, supervised or not)
        self.heard: dict[str, int] = {}

    # -- configuration -------------------------------------------------------------------------

    def watch(self, intervals: Mapping[str, tuple[Kind, float]]) -> None:
        """Supervise these devices (replacing the previous set). A device already watched
        keeps when it was last heard and whether it is silent; a new one counts from now."""
        now = self._clock()
        with self._lock:
            old, self._watched = self._watched, {}
            for device, (kind, interval) in intervals.items():
                before = old.get(device)
                self._watched[device] = _Watch(
                    kind,
                    interval,
                    before.last_heard if before else now,
                    before.silent if before else False,
                )

    @property
    def check_period_s(self) -> float:
        """How often `check()` should run: a quarter of the shortest interval (0.05–10 s)."""
        with self._lock:
            shortest = min((w.interval_s for w in self._watched.values()), default=40.0)
        return min(10.0, max(0.05, shortest / 4))

    def start(self, scheduler: Scheduler) -> None:
        """Check on the scheduler's thread from now on (again after `watch()` changes)."""
        self.stop()
        self._timer = scheduler.call_every(self.check_period_s, self.check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def silent(self, device: str) -> bool:
        with self._lock:
            watch = self._watched.get(device)
            return watch is not None and watch.silent

    # -- the drivers' sink (any thread) --------------------------------------------------------

    def event(self, event: DeviceEvent) -> None:
        if event.type is not EventType.FAULT:
            self._heard(event.device)
        self._out.event(event)

    def sample(self, sample: Sample) -> None:
        self._heard(sample.device)
        self._out.sample(sample)

    def alive(self, device: str) -> None:
        self._heard(device)

    def _heard(self, device: str) -> None:
        now = self._clock()
        with self._lock:
            self.heard[device] = self.heard.get(device, 0) + 1
            watch = self._watched.get(device)
            if watch is None:
                return
            silent_for = now - watch.last_heard
            watch.last_heard = now
            if not watch.silent:
                return
            watch.silent = False
            kind = watch.kind
            self.restores += 1
        log.info("device reports again device=%s silent_s=%.1f", device, silent_for)
        self._out.event(
            DeviceEvent(
                device,
                kind,
                EventType.RESTORE,
                Values(offline_s=round(silent_for, 1)),
                detail=f"reports again after {silent_for:.0f} s",
            )
        )

    # -- the check (scheduler thread) ----------------------------------------------------------

    def check(self) -> None:
        now = self._clock()
        newly_silent: list[tuple[str, _Watch, float]] = []
        with self._lock:
            for device, watch in self._watched.items():
                silent_for = now - watch.last_heard
                if not watch.silent and silent_for > watch.interval_s:
                    watch.silent = True
                    self.faults += 1
                    newly_silent.append((device, watch, silent_for))
        for device, watch, silent_for in newly_silent:
            log.warning(
                "device silent device=%s silent_s=%.1f interval_s=%g",
                device,
                silent_for,
                watch.interval_s,
            )
            self._out.event(
                DeviceEvent(
                    device,
                    watch.kind,
                    EventType.FAULT,
                    detail=f"silent for {silent_for:.0f} s (expected every {watch.interval_s:g} s)",
                )
            )
