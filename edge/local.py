"""Local life-safety reactions: the gateway's own lamp and sounder (profile `local_alarm`).

They react to a life-safety event the moment the agent sees it, before it is stored or sent,
so they work the same with the uplink down (the duty room may not know yet; the neighbours
and the resident do):

- a call (`call` + `press`): the lamp lights for `call_s`, until the call is cancelled at the
  button, or the duty room accepts it (`accepted()`); the sounder beeps for `sound_s`;
- a smoke or gas alarm: the lamp lights until the detector clears; the sounder beeps for
  `sound_s` (the detectors have sounders of their own) or until it clears.

The call button's own LED and buzzer ("call sent") are its driver's, and need no uplink
either. Thread-safe: events come from every driver's thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from contract.models import EventType, Kind
from contract.profiles import LocalAlarmConfig
from edge.drivers.base import DeviceEvent
from edge.drivers.gpio import Beeper, Led
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

#: The device kinds whose alarms (or presses) are life-safety events.
LIFE_SAFETY_KINDS = frozenset({Kind.CALL, Kind.SMOKE, Kind.GAS})


def is_life_safety(event: DeviceEvent) -> bool:
    """A call for help, or a smoke or gas alarm."""
    if event.kind is Kind.CALL:
        return event.type is EventType.PRESS
    return event.kind in LIFE_SAFETY_KINDS and event.type is EventType.ALARM


class LocalAlarm:
    def __init__(self, config: LocalAlarmConfig, *, scheduler: Scheduler, pin_factory: Any = None):
        self.config = config
        self._scheduler = scheduler
        self._led = Led(config.led, active_high=config.led_active_high, pin_factory=pin_factory)
        self._buzzer: Beeper | None = None
        try:
            if config.buzzer is not None:
                self._buzzer = Beeper(
                    config.buzzer, active_high=config.buzzer_active_high, pin_factory=pin_factory
                )
        except Exception:
            self._led.close()
            raise
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}  # device → why ("call" / "alarm")
        self._timers: dict[str, Timer] = {}
        self.reactions = 0

    @property
    def active(self) -> dict[str, str]:
        with self._lock:
            return dict(self._active)

    @property
    def lit(self) -> bool:
        return self._led.is_lit

    def react(self, event: DeviceEvent) -> None:
        """Look at one event (any thread); life-safety ones light and sound at once."""
        if is_life_safety(event):
            why = "call" if event.kind is Kind.CALL else "alarm"
            with self._lock:
                self._active[event.device] = why
                self.reactions += 1
                self._led.on()
                self._sound()
                if why == "call":
                    self._later(event.device, self.config.call_s)
            log.warning(
                "local alarm on device=%s kind=%s type=%s", event.device, event.kind, event.type
            )
        elif event.type is EventType.CLEAR or (
            event.kind is Kind.CALL and event.type is EventType.CANCEL
        ):
            self.end(event.device)

    def accepted(self, device: str) -> None:
        """The duty room accepted the call of `device`: the lamp need not call for help."""
        self.end(device)

    def end(self, device: str) -> None:
        with self._lock:
            if self._active.pop(device, None) is None:
                return
            timer = self._timers.pop(device, None)
            if timer is not None:
                timer.cancel()
            if not self._active:
                self._led.off()
                if self._buzzer is not None:
                    self._buzzer.off()
        log.info("local alarm ended device=%s", device)

    def close(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            self._active.clear()
        self._led.close()
        if self._buzzer is not None:
            self._buzzer.close()

    def _sound(self) -> None:
        if self._buzzer is not None:
            beep = self.config.beep_s
            self._buzzer.chirp(max(1, round(self.config.sound_s / (2 * beep))), beep, beep)

    def _later(self, device: str, delay: float) -> None:
        old = self._timers.pop(device, None)
        if old is not None:
            old.cancel()
        self._timers[device] = self._scheduler.call_later(delay, self.end, device)
