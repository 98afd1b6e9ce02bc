"""Zigbee devices through a local zigbee2mqtt: one MQTT session to the gateway's local broker
(`ZigbeeBridge`, paho), and one driver per device (`ZigbeeDevice`) that maps its messages to
our events with the device model's table (`firmware_configs/models/zigbee_*.yaml`).

zigbee2mqtt publishes, for a device whose friendly name is our device id:

- `{base}/{name}`: the device's state as a JSON object, e.g.
  `{"smoke": true, "battery_low": false, "tamper": false, "battery": 87, "linkquality": 120}`
  or `{"action": "emergency"}` for a button. True/false properties in the model's `binary`
  table become events when they change (`smoke` true → `alarm`, false → `clear`); values
  of `action` in its `actions` table become events every time; numbers in its `values`
  table (e.g. `battery` → `battery_pct`) go with those events and out as readings.
- `{base}/{name}/availability`: `{"state": "online"}` or `{"state": "offline"}` (or the
  bare word, as older versions send it): offline → `fault`, online again → `restore`.

A smoke alarm whose model names a hush property (e.g. `silence`, as zigbee2mqtt documents it
for the Tuya PA-44Z) can be hushed while in alarm: `{"silence": true}` is published on
`{base}/{name}/set`, the hush counts once zigbee2mqtt reports the property true, and when the
time is up `{"silence": false}` is published and, if the smoke persists, the alarm is
reported again.

Device messages are read leniently (unknown properties are ignored; a value out of range is
dropped, not the message); what is not a JSON object is counted and skipped. Every message
from a device tells the sink it is alive (supervision). A retained state message (zigbee2mqtt
can retain device state) only sets what the device was last known to say: an alarm it
reported before the gateway started is not raised again at every restart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from contract.devices import ZigbeeModel
from contract.hush import cannot_hush
from contract.models import EventType, Kind, Values
from contract.site import DeviceSpec
from edge.drivers.base import DeviceEvent, HushRefused, Sample, Sink
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

#: How long a hush waits for zigbee2mqtt to report the device silenced.
HUSH_CONFIRM_S = 5.0


@dataclass(frozen=True)
class ZigbeeBroker:
    """The local broker zigbee2mqtt publishes to (on the gateway itself, see deploy/zigbee/)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base_topic: str = "zigbee2mqtt"
    keepalive: int = 30

    def client(self, client_id: str) -> mqtt.Client:
        """A paho session to this broker (MQTT 3.1.1, clean session, with its credentials);
        also what the simulator's zigbee2mqtt stand-in publishes through."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        return client


@dataclass
class BridgeStats:
    messages: int = 0
    unreadable: int = 0  # not a JSON object
    unknown_device: int = 0
    connects: int = 0


class ZigbeeBridge:
    """One MQTT session to the local broker, shared by every Zigbee device of a gateway.

    Devices register with `add()`; the session starts with the first and stops with the last.
    paho reconnects by itself and every (re)connect subscribes again. `connected` is set on
    the broker's CONNACK; `wait_subscribed()` returns once the broker has also acknowledged
    the subscriptions of every device added so far (messages published before that may
    not reach this bridge).
    """

    def __init__(self, broker: ZigbeeBroker, *, client_id: str | None = None):
        self.broker = broker
        self.stats = BridgeStats()
        self.connected = threading.Event()
        self._client_id = client_id or f"sc-zigbee-{os.getpid()}-{os.urandom(3).hex()}"
        self._devices: dict[str, ZigbeeDevice] = {}
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._live = False  # connected, and the devices known then are subscribed
        self._unacked: set[int] = set()  # SUBSCRIBE packets (mids) the broker has not acknowledged
        self._subscribed = threading.Condition(self._lock)

    # -- devices -------------------------------------------------------------------------------

    def add(self, device: ZigbeeDevice) -> None:
        # Under the lock with `_on_connect`: either it sees this device, or this sees it
        # connected and subscribes itself.
        with self._lock:
            self._devices[device.device_id] = device
            client = self._client
            if client is not None and self._live:
                self._subscribe(client, self._filters(device.device_id))
        if client is None:
            self._start()

    def remove(self, device: ZigbeeDevice) -> None:
        with self._lock:
            if self._devices.get(device.device_id) is device:
                del self._devices[device.device_id]
            client = self._client if not self._devices else None
            if client is not None:
                self._client = None
        if client is not None:
            self._stop(client)
        elif self._client is not None and self.connected.is_set():
            self._client.unsubscribe([f for f, _ in self._filters(device.device_id)])

    def set_state(self, name: str, state: dict[str, Any], timeout: float) -> bool:
        """Publish `state` on `{base}/{name}/set` (QoS 1); True once the local broker has it."""
        with self._lock:
            client = self._client
        if client is None or not self.connected.is_set():
            return False
        info = client.publish(f"{self.broker.base_topic}/{name}/set", json.dumps(state), qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def wait_subscribed(self, timeout: float) -> bool:
        """Until connected with every added device's subscriptions acknowledged."""
        with self._subscribed:
            return self._subscribed.wait_for(lambda: self._live and not self._unacked, timeout)

    def _subscribe(self, client: mqtt.Client, filters: list[tuple[str, int]]) -> None:
        # Under the lock: `_on_subscribe` cannot see the SUBACK before its mid is recorded.
        result, mid = client.subscribe(filters)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._unacked.add(mid)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._subscribed:
            self._unacked.discard(mid)
            self._subscribed.notify_all()

    def _filters(self, name: str) -> list[tuple[str, int]]:
        base = self.broker.base_topic
        return [(f"{base}/{name}", 1), (f"{base}/{name}/availability", 1)]

    # -- the session -----------------------------------------------------------------------------

    def _start(self) -> None:
        client = self.broker.client(self._client_id)
        # paho annotates the delays int, but any number of seconds works: it only doubles,
        # compares and sleeps them; a local broker back after a restart is found within 0.1 s
        client.reconnect_delay_set(0.1, 5)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        with self._lock:
            self._client = client
        # connect_async: the gateway starts even when the local broker is not up yet.
        client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        client.loop_start()

    def _stop(self, client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()
        with self._lock:
            self._live = False
        self.connected.clear()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._devices.clear()
        if client is not None:
            self._stop(client)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("zigbee broker refused the bridge reason=%r", str(reason))
            return
        with self._subscribed:
            names = list(self._devices)
            filters = [f for name in names for f in self._filters(name)]
            self._unacked.clear()  # a new session: what the old one waited for is moot
            if filters:
                self._subscribe(client, filters)
            self._live = True
            self._subscribed.notify_all()
        self.stats.connects += 1
        self.connected.set()
        log.info(
            "zigbee bridge connected broker=%s:%d devices=%d",
            self.broker.host,
            self.broker.port,
            len(names),
        )

    def _on_disconnect(self, *_: Any) -> None:
        with self._lock:
            self._live = False
            self._unacked.clear()
        if self.connected.is_set():
            log.warning(
                "zigbee bridge disconnected broker=%s:%d", self.broker.host, self.broker.port
            )
        self.connected.clear()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.stats.messages += 1
            rest = msg.topic[len(self.broker.base_topic) + 1 :]
            name, _, sub = rest.partition("/")
            with self._lock:
                device = self._devices.get(name)
            if device is None or sub not in ("", "availability"):
                self.stats.unknown_device += 1
                return
            if sub == "availability":
                online = _availability(msg.payload)
                if online is None:
                    self.stats.unreadable += 1
                    log.info("zigbee availability unreadable device=%s", name)
                    return
                device.on_availability(online)
                return
            try:
                state = json.loads(msg.payload)
            except (ValueError, UnicodeDecodeError):
                state = None
            if not isinstance(state, dict):
                self.stats.unreadable += 1
                log.info("zigbee message is not a JSON object device=%s", name)
                return
            device.on_state(state, retained=bool(msg.retain))
        except Exception:
            log.exception("zigbee message handling failed topic=%s", msg.topic)


def _availability(payload: bytes | bytearray) -> bool | None:
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("state")
    if value in ("online", "offline"):
        return value == "online"
    return None


class ZigbeeDevice:
    """One Zigbee device (a Driver): maps its zigbee2mqtt messages by its model's table."""

    def __init__(
        self,
        spec: DeviceSpec,
        model: ZigbeeModel,
        *,
        bridge: ZigbeeBridge,
        sink: Sink,
        scheduler: Scheduler | None = None,
    ):
        self.device_id = spec.id
        self.model = model
        self.kind: Kind = model.kind
        self.state: dict[str, bool] = {}
        self.online: bool | None = None
        self._bridge = bridge
        self._sink = sink
        self._scheduler = scheduler
        self._lock = threading.Lock()  # paho's thread only, but state is read by tests
        self._changed = threading.Condition(self._lock)
        self._hush_timer: Timer | None = None

    def start(self) -> None:
        self._bridge.add(self)

    def close(self) -> None:
        with self._lock:
            timer, self._hush_timer = self._hush_timer, None
        if timer is not None:
            timer.cancel()
        self._bridge.remove(self)

    # -- remote hush (a command's thread) --------------------------------------------------------

    @property
    def hushed(self) -> bool:
        return self._hush_timer is not None

    def _in_alarm(self) -> bool:
        return any(
            self.state.get(prop) is True and meaning.when_true is EventType.ALARM
            for prop, meaning in self.model.binary.items()
        )

    def hush(self, duration_s: float) -> str:
        """Silence the alarm through zigbee2mqtt for `duration_s`; HushRefused says why not."""
        reason = cannot_hush(self.model, {})
        if reason is not None or self.model.hush is None or self._scheduler is None:
            raise HushRefused(reason[1] if reason else "no scheduler for the hush")
        prop = self.model.hush.property
        with self._lock:
            if not self._in_alarm():
                raise HushRefused("the smoke alarm is not in alarm: nothing to hush")
            if self._hush_timer is not None:
                raise HushRefused("already hushed")
            self.state.pop(prop, None)  # what zigbee2mqtt says from now on
        if not self._bridge.set_state(self.device_id, {prop: True}, HUSH_CONFIRM_S):
            raise HushRefused("zigbee2mqtt's broker did not take the hush")
        with self._changed:
            confirmed = self._changed.wait_for(lambda: self.state.get(prop) is True, HUSH_CONFIRM_S)
            if confirmed:
                self._hush_timer = self._scheduler.call_later(duration_s, self._hush_over)
        if not confirmed:
            raise HushRefused(f"zigbee2mqtt did not report {prop}=true within {HUSH_CONFIRM_S:g} s")
        log.info("hushed device=%s for=%ss", self.device_id, duration_s)
        return (
            f"hushed for {duration_s:g} s (zigbee2mqtt reports {prop}=true); it sounds again "
            "afterwards if the smoke persists"
        )

    def _hush_over(self) -> None:  # the scheduler's thread
        assert self.model.hush is not None
        with self._lock:
            self._hush_timer = None
            smoke = self._in_alarm()
        self._bridge.set_state(self.device_id, {self.model.hush.property: False}, HUSH_CONFIRM_S)
        if smoke:
            self._emit(EventType.ALARM, Values(), "smoke persists after the hush: alarm again")

    def accept(self) -> str:
        """The duty room accepted a call from this device (it has no indicator to light)."""
        return "call accepted; this Zigbee device has no indicator"

    # -- paho's thread ---------------------------------------------------------------------------

    def on_availability(self, online: bool) -> None:
        with self._lock:
            before, self.online = self.online, online
        if online:
            self._sink.alive(self.device_id)
            if before is False:
                self._emit(EventType.RESTORE, Values(), "zigbee2mqtt: online again")
        elif before is not False:
            self._emit(EventType.FAULT, Values(), "zigbee2mqtt: device offline")

    def on_state(self, state: dict[str, Any], *, retained: bool = False) -> None:
        values = self._values(state)
        events: list[tuple[EventType, str]] = []
        with self._lock:
            for prop, meaning in self.model.binary.items():
                value = state.get(prop)
                if not isinstance(value, bool):
                    continue
                before = self.state.get(prop)
                self.state[prop] = value
                if retained or value == before:
                    continue
                if before is None and not value:
                    continue  # the first message says all is well: nothing to report
                type_ = meaning.when_true if value else meaning.when_false
                if type_ is not None:
                    events.append((type_, f"{prop}={str(value).lower()}"))
            hush = self.model.hush
            if hush is not None and isinstance(state.get(hush.property), bool):
                self.state[hush.property] = state[hush.property]
                self._changed.notify_all()
            if self._hush_timer is not None and not self._in_alarm() and hush is not None:
                self._hush_timer.cancel()  # the smoke is gone: the hush is over
                self._hush_timer = None
            action = state.get("action")
            if not retained and isinstance(action, str) and action:
                type_ = self.model.actions.get(action)
                if type_ is not None:
                    events.append((type_, f"action={action}"))
                else:
                    log.debug(
                        "zigbee action not mapped device=%s action=%s", self.device_id, action
                    )
        if retained:
            log.info("zigbee retained state taken as known device=%s", self.device_id)
            return
        self._sink.alive(self.device_id)
        for type_, detail in events:
            self._emit(type_, values, detail)
        if values.present():
            self._sink.sample(Sample(self.device_id, self.kind, values))

    def _values(self, state: dict[str, Any]) -> Values:
        found: dict[str, float] = {}
        for prop, unit in self.model.values.items():
            value = state.get(prop)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[unit] = float(value)
        for unit in list(found):
            try:
                Values(**{unit: found[unit]})
            except ValidationError:
                log.info(
                    "zigbee value out of range device=%s %s=%s", self.device_id, unit, found[unit]
                )
                del found[unit]
        return Values(**found)

    def _emit(self, type_: EventType, values: Values, detail: str) -> None:
        self._sink.event(DeviceEvent(self.device_id, self.kind, type_, values, detail=detail))
