"""Device drivers, one module per device family; only `gpio` imports gpiozero.

`build_drivers()` makes the drivers of one gateway from its validated configuration.
"""

from __future__ import annotations

import os
from dataclasses import replace

from contract.devices import (
    AirModel,
    CallButtonModel,
    Co2Model,
    ContactDetectorModel,
    GasModel,
    ZigbeeModel,
)
from edge.config import GatewayConfig
from edge.drivers.base import Driver, Hardware, Sink
from edge.drivers.call_button import CallButton
from edge.drivers.contact import ContactDetector
from edge.drivers.gas import GasDetector
from edge.drivers.pms5003 import AirSensor
from edge.drivers.senseair_s8 import Co2Sensor
from edge.drivers.zigbee import ZigbeeBridge, ZigbeeBroker, ZigbeeDevice
from edge.scheduler import Scheduler

__all__ = [
    "AirSensor",
    "CallButton",
    "Co2Sensor",
    "ContactDetector",
    "GasDetector",
    "ZigbeeBridge",
    "ZigbeeBroker",
    "ZigbeeDevice",
    "build_drivers",
]


def build_drivers(
    config: GatewayConfig,
    *,
    hardware: Hardware,
    scheduler: Scheduler,
    sink: Sink,
    zigbee: ZigbeeBroker | None = None,
) -> dict[str, Driver]:
    """One driver per device, by device id (not started). Closes what it made on failure.

    Zigbee devices share one `ZigbeeBridge` to the local broker `zigbee` (its session starts
    with the first device started and ends with the last one closed).
    """
    drivers: dict[str, Driver] = {}
    factory = hardware.pin_factory
    bridge: ZigbeeBridge | None = None
    try:
        for spec in config.spec.devices:
            model = config.models[spec.model]
            driver: Driver
            if isinstance(model, CallButtonModel):
                driver = CallButton(
                    spec, model, scheduler=scheduler, sink=sink, pin_factory=factory
                )
            elif isinstance(model, ContactDetectorModel):
                driver = ContactDetector(
                    spec, model, scheduler=scheduler, sink=sink, pin_factory=factory
                )
            elif isinstance(model, GasModel):
                assert config.profile.adc is not None  # validate_gateway checked
                driver = GasDetector(
                    spec,
                    model,
                    adc=config.profile.adc,
                    scheduler=scheduler,
                    sink=sink,
                    pin_factory=factory,
                )
            elif isinstance(model, AirModel):
                assert spec.port is not None
                port = hardware.serial_port(spec.id, spec.port)
                driver = AirSensor(spec, model, port=port, sink=sink)
            elif isinstance(model, Co2Model):
                assert spec.port is not None
                port = hardware.serial_port(spec.id, spec.port)
                driver = Co2Sensor(spec, model, port=port, sink=sink)
            elif isinstance(model, ZigbeeModel):
                assert config.profile.zigbee is not None  # validate_gateway checked
                if zigbee is None:
                    raise ValueError(
                        f"device {spec.id} is a Zigbee device: the gateway needs its local "
                        "zigbee2mqtt broker (settings SC_GW_ZIGBEE_*)"
                    )
                if bridge is None:
                    bridge = ZigbeeBridge(
                        replace(zigbee, base_topic=config.profile.zigbee.base_topic),
                        client_id=f"sc-{config.gateway_id}-zigbee-{os.urandom(3).hex()}",
                    )
                driver = ZigbeeDevice(spec, model, bridge=bridge, sink=sink, scheduler=scheduler)
            else:  # pragma: no cover - the union is exhaustive
                raise TypeError(f"no driver for {type(model).__name__}")
            drivers[spec.id] = driver
    except Exception:
        for made in drivers.values():
            made.close()
        raise
    return drivers
