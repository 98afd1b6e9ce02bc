"""The call button driver on gpiozero's mock pins: calls, test presses, bounce, the LED."""

from __future__ import annotations

import time

from contract.models import EventType, Kind
from edge.drivers.call_button import CallButton, Indicator
from tests.edge.helpers import settle

BUTTON = "call-0101"


def button(rig) -> CallButton:
    driver = rig.drivers[BUTTON]
    assert isinstance(driver, CallButton)
    return driver


def test_short_press_is_one_call_and_lights_the_led_at_once(rig_factory):
    rig = rig_factory()
    rig.hw.press_call(BUTTON, hold_s=0.2)
    (event,) = rig.sink.wait(lambda: rig.sink.of(BUTTON))
    assert (event.kind, event.type) == (Kind.CALL, EventType.PRESS)
    assert 150 <= event.values.press_ms <= 450
    rig.sink.wait(lambda: rig.hw.led_lit(BUTTON))
    assert button(rig).indicator is Indicator.CALL_SENT
    assert button(rig).call_open
    settle(0.3)
    assert rig.hw.led_lit(BUTTON), "call sent: the LED stays on"
    assert any(level for _, level in rig.hw.history(BUTTON, "buzzer")), "the buzzer chirped"
    assert len(rig.sink.of(BUTTON)) == 1


def test_long_press_is_a_test_not_a_call(rig_factory):
    rig = rig_factory(call_button_gpio={"long_press_s": 0.4})
    rig.hw.set_input(BUTTON, "button", True)
    # Reported when the hold reaches long_press_s, while still held.
    (event,) = rig.sink.wait(lambda: rig.sink.of(BUTTON), timeout=2)
    assert event.type is EventType.TEST
    assert event.values.press_ms >= 400
    time.sleep(0.2)
    rig.hw.set_input(BUTTON, "button", False)
    settle(0.3)
    assert [e.type for e in rig.sink.of(BUTTON)] == [EventType.TEST]
    assert not button(rig).call_open
    # The LED flashed the test pattern and went back to off (no call is open).
    assert sum(lvl for _, lvl in rig.hw.history(BUTTON, "led")) >= 2
    rig.sink.wait(lambda: button(rig).showing is Indicator.OFF, timeout=2)
    assert not rig.hw.led_lit(BUTTON)


def test_contact_bounce_makes_one_call(rig_factory):
    rig = rig_factory()
    for _ in range(6):  # a bouncing contact: six edges pairs within ~12 ms
        rig.hw.set_input(BUTTON, "button", True)
        time.sleep(0.001)
        rig.hw.set_input(BUTTON, "button", False)
        time.sleep(0.001)
    rig.hw.set_input(BUTTON, "button", True)
    time.sleep(0.25)
    for _ in range(4):  # and bounce on release
        rig.hw.set_input(BUTTON, "button", False)
        time.sleep(0.001)
        rig.hw.set_input(BUTTON, "button", True)
        time.sleep(0.001)
    rig.hw.set_input(BUTTON, "button", False)
    rig.sink.wait(lambda: rig.sink.of(BUTTON))
    settle(0.3)
    assert [e.type for e in rig.sink.of(BUTTON)] == [EventType.PRESS]


def test_a_glitch_shorter_than_bounce_is_not_a_press(rig_factory):
    rig = rig_factory()
    rig.hw.set_input(BUTTON, "button", True)
    time.sleep(0.01)
    rig.hw.set_input(BUTTON, "button", False)
    settle(0.3)
    assert rig.sink.of(BUTTON) == []


def test_second_press_while_call_open_is_not_a_second_call(rig_factory):
    rig = rig_factory()
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: rig.sink.of(BUTTON))
    rig.hw.press_call(BUTTON)
    rig.hw.press_call(BUTTON)
    settle(0.3)
    assert len(rig.sink.of(BUTTON, EventType.PRESS)) == 1
    assert rig.hw.led_lit(BUTTON)


def test_call_accepted_shows_help_is_coming_and_closes_the_call(rig_factory):
    rig = rig_factory()
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: rig.sink.of(BUTTON))
    rig.sink.wait(lambda: rig.hw.led_lit(BUTTON))
    rig.hw.clear_history(BUTTON, "led")

    detail = button(rig).accept()

    assert "call closed" in detail
    assert button(rig).indicator is Indicator.HELP_COMING
    assert not button(rig).call_open
    # "help is coming": the LED blinks (0.5 s on / 0.5 s off) instead of staying on.
    changes = rig.sink.wait(
        lambda: (
            [lvl for _, lvl in rig.hw.history(BUTTON, "led")[1:]][:3]
            if len(rig.hw.history(BUTTON, "led")) >= 4
            else None
        ),
        timeout=3,
    )
    assert changes == [False, True, False]
    # The call is closed: the next press is a new call.
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: len(rig.sink.of(BUTTON, EventType.PRESS)) == 2)
    rig.sink.wait(lambda: button(rig).indicator is Indicator.CALL_SENT)


def test_accept_without_an_open_call_still_shows_help(rig_factory):
    rig = rig_factory()
    assert "no open call" in button(rig).accept()
    assert button(rig).indicator is Indicator.HELP_COMING


def test_unanswered_call_expires_and_the_next_press_is_a_new_call(rig_factory):
    rig = rig_factory(call_button_gpio={"call_open_s": 0.6})
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: rig.sink.of(BUTTON))
    rig.sink.wait(lambda: not button(rig).call_open, timeout=2)
    assert not rig.hw.led_lit(BUTTON)
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: len(rig.sink.of(BUTTON, EventType.PRESS)) == 2)


def test_button_held_at_start_is_ignored_until_released(rig_factory):
    rig = rig_factory()
    driver = button(rig)
    driver.close()
    rig.hw.set_input(BUTTON, "button", True)
    stuck = CallButton(
        rig.config.device(BUTTON),
        rig.config.models["call_button_gpio"],
        scheduler=rig.scheduler,
        sink=rig.sink,
        pin_factory=rig.hw.pin_factory,
    )
    rig.drivers[BUTTON] = stuck
    rig.scheduler.run_sync(stuck.start)
    rig.hw.set_input(BUTTON, "button", False)
    settle(0.3)
    assert rig.sink.of(BUTTON) == []
    rig.hw.press_call(BUTTON)
    rig.sink.wait(lambda: rig.sink.of(BUTTON, EventType.PRESS))


def test_a_press_is_not_lost_when_the_driver_thread_runs_late(rig_factory):
    rig = rig_factory()
    rig.scheduler.call_soon(time.sleep, 0.6)  # e.g. a slow SD card holding the thread
    rig.hw.press_call(BUTTON, hold_s=0.2)
    (event,) = rig.sink.wait(lambda: rig.sink.of(BUTTON))
    assert event.type is EventType.PRESS
    assert 150 <= event.values.press_ms <= 350, "timed from the edges, not from the late check"
