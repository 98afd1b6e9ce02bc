"""Device drivers, one module per device family; only `gpio` imports gpiozero.

`build_drivers()` makes the drivers of one gateway from its validated configuration.
"""

from __future__ import annotations

from edge.config import AirModel, CallButtonModel, GasModel, GatewayConfig, SmokeModel
from edge.drivers.base import Driver, Hardware, Sink
from edge.drivers.call_button import CallButton
from edge.drivers.gas import GasDetector
from edge.drivers.pms5003 import AirSensor
from edge.drivers.smoke import SmokeDetector
from edge.scheduler import Scheduler

__all__ = ["AirSensor", "CallButton", "GasDetector", "SmokeDetector", "build_drivers"]


def build_drivers(
    config: GatewayConfig, *, hardware: Hardware, scheduler: Scheduler, sink: Sink
) -> dict[str, Driver]:
    """One driver per device, by device id (not started). Closes what it made on failure."""
    drivers: dict[str, Driver] = {}
    factory = hardware.pin_factory
    try:
        for spec in config.spec.devices:
            model = config.models[spec.model]
            driver: Driver
            if isinstance(model, CallButtonModel):
                driver = CallButton(
                    spec, model, scheduler=scheduler, sink=sink, pin_factory=factory
                )
            elif isinstance(model, SmokeModel):
                driver = SmokeDetector(
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
            else:  # pragma: no cover - the union is exhaustive
                raise TypeError(f"no driver for {type(model).__name__}")
            drivers[spec.id] = driver
    except Exception:
        for made in drivers.values():
            made.close()
        raise
    return drivers
