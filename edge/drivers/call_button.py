"""One-key emergency call button (一键呼叫) with an LED and a buzzer.

- Short press (released before `long_press_s`): a call. Event kind=call type=press with
  `press_ms`; the LED lights steady at once ("call sent") and the buzzer chirps, whatever the
  uplink is doing (the outbox keeps the call until it is delivered).
- Long press (held `long_press_s` or more): a test, reported as type=test the moment the hold
  reaches `long_press_s`; never a call. The LED flashes three times.
- A press while a call is open (not accepted, less than `call_open_s` old) is not a second
  call: the buzzer chirps again to reassure, nothing is sent.
- `accept()` (the cloud's `call_accepted`): the call is closed and the LED blinks slowly
  ("help is coming") for `help_led_s`.
- One-key voice (gateway/voice/): while a voice call rings the LED flashes quickly, while it is
  connected it is on with a short blink off every two seconds; when it ends, the LED shows
  what it showed before. A press while the call is connected hangs up (`on_hangup`); it is
  not a new call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from contract.devices import CallButtonModel
from contract.models import EventType, Kind, Values
from contract.site import DeviceSpec
from contract.voice import CallState
from edge.drivers.base import DeviceEvent, Sink
from edge.drivers.gpio import Beeper, DigitalInput, Edge, Led
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)


class Indicator(StrEnum):
    OFF = "off"
    CALL_SENT = "call_sent"  # LED steady on
    HELP_COMING = "help_coming"  # LED blinking slowly
    TEST = "test"  # LED flashing three times (then back to the previous state)
    RINGING = "ringing"  # a voice call offered: LED flashing quickly
    CONNECTED = "connected"  # a voice call connected: LED on, a short blink off every 2 s


class CallButton:
    def __init__(
        self,
        spec: DeviceSpec,
        model: CallButtonModel,
        *,
        scheduler: Scheduler,
        sink: Sink,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.device_id = spec.id
        self.model = model
        self._scheduler = scheduler
        self._sink = sink
        self._clock = clock
        self._button = DigitalInput(
            spec.pins["button"],
            active_low=model.button.active_low,
            pull_up=model.button.pull_up,
            bounce_s=model.bounce_s,
            scheduler=scheduler,
            on_change=self._on_button,
            pin_factory=pin_factory,
        )
        self._led = Led(
            spec.pins["led"], active_high=model.led_active_high, pin_factory=pin_factory
        )
        self._buzzer = (
            Beeper(
                spec.pins["buzzer"], active_high=model.buzzer_active_high, pin_factory=pin_factory
            )
            if "buzzer" in spec.pins
            else None
        )
        self.indicator = Indicator.OFF
        self.showing = Indicator.OFF  # what the LED shows now (the indicator or the test flash)
        self._pressed_at: Edge | None = None
        self._ignore_until_release = False
        self._long_fired = False
        self._call_opened: float | None = None
        self._timers: dict[str, Timer] = {}
        self.voice: CallState | None = None  # the voice call at this button, if any
        #: a press while the voice call is connected: hang up (set by the voice service)
        self.on_hangup: Callable[[str], None] | None = None

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._button.start():
            log.warning(
                "call button held at start, ignored until released device=%s", self.device_id
            )
            self._ignore_until_release = True

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._button.close()
        self._led.close()
        if self._buzzer is not None:
            self._buzzer.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def call_open(self) -> bool:
        """A call was sent and is neither accepted nor expired."""
        return self._call_opened is not None

    @property
    def led_lit(self) -> bool:
        return self._led.is_lit

    def accept(self) -> str:
        """The duty room accepted the call: close it, show "help is coming". Any thread."""
        return self._scheduler.run_sync(self._accept)

    def show_call(self, state: CallState) -> None:
        """A voice call's state to show on the LED (any thread; never waits)."""
        self._scheduler.call_soon(self._show_call, state)

    # -- scheduler thread --------------------------------------------------------------------

    def _show_call(self, state: CallState) -> None:
        self.voice = None if state is CallState.ENDED else state
        self._cancel("pattern")
        self._show(None)

    def _accept(self) -> str:
        detail = "call closed" if self.call_open else "no open call at this button"
        self._call_opened = None
        self._cancel("expire")
        self._set_indicator(Indicator.HELP_COMING)
        self._timers["help"] = self._scheduler.call_later(
            self.model.help_led_s, self._set_indicator, Indicator.OFF
        )
        log.info("call accepted device=%s detail=%r", self.device_id, detail)
        return f"{detail}; LED shows help is coming"

    def _on_button(self, pressed: bool, edge: Edge) -> None:
        if pressed:
            if self._ignore_until_release:
                return
            self._pressed_at = edge
            self._long_fired = False
            remaining = self.model.long_press_s - (self._clock() - edge.mono)
            self._timers["long"] = self._scheduler.call_later(remaining, self._on_long)
            return
        if self._ignore_until_release:
            self._ignore_until_release = False
            return
        pressed_at, self._pressed_at = self._pressed_at, None
        self._cancel("long")
        if pressed_at is None or self._long_fired:
            return
        held = edge.mono - pressed_at.mono
        if held >= self.model.long_press_s:
            self._test(held, edge)
        else:
            self._short_press(held, edge)

    def _on_long(self) -> None:
        if self._pressed_at is None or self._long_fired or not self._button.asserted:
            return
        self._long_fired = True
        self._test(self._clock() - self._pressed_at.mono, Edge.now())

    def _short_press(self, held: float, edge: Edge) -> None:
        if self.voice is CallState.CONNECTED and self.on_hangup is not None:
            log.info("press during a voice call: hanging up device=%s", self.device_id)
            self.on_hangup(self.device_id)
            self._chirp(1)
            return
        if self.call_open:
            log.info("press while a call is open: not a new call device=%s", self.device_id)
            self._chirp(1)
            return
        self._call_opened = self._clock()
        self._timers["expire"] = self._scheduler.call_later(self.model.call_open_s, self._expire)
        self._sink.event(
            DeviceEvent(
                self.device_id,
                Kind.CALL,
                EventType.PRESS,
                Values(press_ms=round(held * 1000, 1)),
                ts=edge.wall,
            )
        )
        self._cancel("help")
        self._set_indicator(Indicator.CALL_SENT)
        self._chirp(1)

    def _test(self, held: float, edge: Edge) -> None:
        self._sink.event(
            DeviceEvent(
                self.device_id,
                Kind.CALL,
                EventType.TEST,
                Values(press_ms=round(held * 1000, 1)),
                ts=edge.wall,
                detail="long press",
            )
        )
        self._show(Indicator.TEST)
        self._chirp(2)
        self._timers["pattern"] = self._scheduler.call_later(0.7, self._show, None)

    def _expire(self) -> None:
        if self.call_open:
            log.warning("call not accepted in time, closed locally device=%s", self.device_id)
            self._call_opened = None
            self._set_indicator(Indicator.OFF)

    def _set_indicator(self, state: Indicator) -> None:
        self.indicator = state
        self._cancel("pattern")
        self._show(None)  # a voice call's state shows over it while there is one

    def _show(self, state: Indicator | None) -> None:
        """Drive the LED for a state (None: the current indicator again, or the voice call's
        while there is one)."""
        if state is None:
            if self.voice is CallState.RINGING:
                state = Indicator.RINGING
            elif self.voice is CallState.CONNECTED:
                state = Indicator.CONNECTED
            else:
                state = self.indicator
        self.showing = state
        if state is Indicator.OFF:
            self._led.off()
        elif state is Indicator.CALL_SENT:
            self._led.on()
        elif state is Indicator.HELP_COMING:
            self._led.blink(0.5, 0.5)
        elif state is Indicator.RINGING:
            self._led.blink(0.15, 0.15)
        elif state is Indicator.CONNECTED:
            self._led.blink(1.8, 0.2)
        else:
            self._led.blink(0.1, 0.1, n=3)

    def _chirp(self, n: int) -> None:
        if self._buzzer is not None:
            self._buzzer.chirp(n, self.model.chirp_s, self.model.chirp_s)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
