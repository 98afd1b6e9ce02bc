"""Shared by the edge tests: a recording sink and a rig of real drivers on simulated hardware."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from contract.models import EventType
from edge.config import GatewayConfig, load_gateway_config
from edge.drivers import build_drivers
from edge.drivers.base import DeviceEvent, Driver, Sample
from edge.drivers.pms5003 import AirSensor
from edge.drivers.zigbee import ZigbeeBroker
from edge.scheduler import Scheduler
from edge.sim import SimulatedHardware
from edge.supervision import Supervisor, report_intervals
from tests import servers
from tests.servers import Mosquitto

DEMO_SITE = Path(__file__).resolve().parents[2] / "firmware_configs" / "sites" / "demo.yaml"
#: A gateway (gw-field) with one device of every model, wired, serial and Zigbee.
FIELD_SITE = Path(__file__).resolve().parent / "field_site.yaml"


class Recorder:
    """A thread-safe Sink that keeps everything and lets a test wait for it."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self.samples: list[Sample] = []
        self.heard: dict[str, int] = {}
        self._cond = threading.Condition()

    def event(self, event: DeviceEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def sample(self, sample: Sample) -> None:
        with self._cond:
            self.samples.append(sample)
            self._cond.notify_all()

    def alive(self, device: str) -> None:
        with self._cond:
            self.heard[device] = self.heard.get(device, 0) + 1
            self._cond.notify_all()

    def types(self, device: str) -> list[EventType]:
        return [e.type for e in self.of(device)]

    def of(self, device: str, type_: EventType | None = None) -> list[DeviceEvent]:
        with self._cond:
            return [
                e for e in self.events if e.device == device and (type_ is None or e.type == type_)
            ]

    def samples_of(self, device: str) -> list[Sample]:
        with self._cond:
            return [s for s in self.samples if s.device == device]

    def wait(self, check: Callable[[], Any], timeout: float = 3.0) -> Any:
        """Wait until `check()` is truthy; returns its value or fails with what was seen."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s; events={self.events} "
                        f"samples={self.samples[-5:]}"
                    )
                self._cond.wait(min(left, 0.05))


@dataclass
class Rig:
    """One gateway's drivers, started, on simulated hardware, reporting through the
    supervisor (as in the agent) to a recorder."""

    config: GatewayConfig
    hw: SimulatedHardware
    scheduler: Scheduler
    sink: Recorder
    supervisor: Supervisor
    drivers: dict[str, Driver] = field(default_factory=dict)

    def close(self) -> None:
        self.scheduler.stop()
        for driver in self.drivers.values():
            driver.close()
        self.hw.close()


def make_rig(
    gateway: str = "gw-ld01",
    *,
    site: Path = DEMO_SITE,
    frame_interval_s: float = 1.0,
    zigbee: ZigbeeBroker | None = None,
    feed: ZigbeeBroker | None = None,
    only: set[str] | None = None,
    **model_changes: dict[str, Any],
) -> Rig:
    """Drivers for a gateway of `site` (only the devices in `only`, if given); Zigbee
    devices through the local broker as `zigbee`, simulated zigbee2mqtt publishing as `feed`."""
    config = load_gateway_config(site, gateway)
    if only is not None:
        spec = config.spec.model_copy(
            update={"devices": [d for d in config.spec.devices if d.id in only]}
        )
        config = GatewayConfig.build(spec, config.profile, config.models, source=config.source)
    for model, changes in model_changes.items():
        config = config.with_model(model, **changes)
    hw = SimulatedHardware(config, frame_interval_s=frame_interval_s, zigbee=feed)
    scheduler = Scheduler(gateway)
    scheduler.start()
    sink = Recorder()
    supervisor = Supervisor(sink)
    supervisor.watch(report_intervals(config))
    supervisor.start(scheduler)
    rig = Rig(config, hw, scheduler, sink, supervisor)
    rig.drivers = build_drivers(
        config, hardware=hw, scheduler=scheduler, sink=supervisor, zigbee=zigbee
    )
    for driver in rig.drivers.values():
        scheduler.run_sync(driver.start)
    hw.start()
    for driver in rig.drivers.values():
        if isinstance(driver, AirSensor):
            assert driver.port_open.wait(3), f"{driver.device_id}: serial port not open"
    return rig


def settle(seconds: float = 0.3) -> None:
    """Let time pass where a test must show that nothing (more) happens."""
    time.sleep(seconds)


LOCAL_ACL = Path(__file__).resolve().parents[2] / "deploy" / "zigbee" / "acl"


class LocalBroker(Mosquitto):
    """The gateway's local broker for zigbee2mqtt: a real Mosquitto with the ACL we ship for
    it (deploy/zigbee/acl) instead of the community broker's."""

    def start(self) -> None:
        with mock.patch.object(servers, "ACL", LOCAL_ACL):
            super().start()

    def broker(self, user: str = "sc-gateway") -> ZigbeeBroker:
        return ZigbeeBroker(port=self.port, username=user, password=self.users[user])
