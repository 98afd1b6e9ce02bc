"""Methane / biogas detector: its alarm relay on a GPIO, its analogue output on an MCP3008.

- Relay → alarm / clear (with the latest trusted %LEL reading, if any).
- ADC sampled every `sample_period_s`, volts → %LEL by the model's calibration → a reading
  `ch4_pct_lel`. Nothing is sent during `warmup_s` after start (the sensor head is heating).
- Below `fault_below_v` the current loop is broken: one fault event, no reading; a
  `restore` once the loop is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from contract.devices import GasModel
from contract.models import EventType, Kind, Values
from contract.profiles import AdcConfig
from contract.site import DeviceSpec
from edge.drivers.base import DeviceEvent, Sample, Sink
from edge.drivers.gpio import DigitalInput, Edge, Mcp3008Input
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)


class GasDetector:
    def __init__(
        self,
        spec: DeviceSpec,
        model: GasModel,
        *,
        adc: AdcConfig,
        scheduler: Scheduler,
        sink: Sink,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        assert spec.adc_channel is not None
        self.device_id = spec.id
        self.model = model
        self._scheduler = scheduler
        self._sink = sink
        self._clock = clock
        self._relay = DigitalInput(
            spec.pins["relay"],
            active_low=model.relay.active_low,
            pull_up=model.relay.pull_up,
            bounce_s=model.bounce_s,
            scheduler=scheduler,
            on_change=self._on_relay,
            pin_factory=pin_factory,
        )
        self._adc = Mcp3008Input(
            spec.adc_channel,
            spi_port=adc.spi_port,
            spi_device=adc.spi_device,
            vref=adc.vref,
            pin_factory=pin_factory,
        )
        self._started = 0.0
        self._timer: Timer | None = None
        self.faulted = False
        self.last_pct_lel: float | None = None
        self.samples_in_warmup = 0

    @property
    def warming_up(self) -> bool:
        return self._clock() - self._started < self.model.warmup_s

    def start(self) -> None:
        self._started = self._clock()
        if self._relay.start():
            self._on_relay(True, Edge.now())
        self._timer = self._scheduler.call_every(self.model.sample_period_s, self._sample)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._relay.close()
        self._adc.close()

    def _on_relay(self, asserted: bool, edge: Edge) -> None:
        values = Values()
        if self.last_pct_lel is not None and not self.warming_up:
            values = Values(ch4_pct_lel=self.last_pct_lel)
        type_ = EventType.ALARM if asserted else EventType.CLEAR
        self._sink.event(DeviceEvent(self.device_id, Kind.GAS, type_, values, ts=edge.wall))

    def _sample(self) -> None:
        if self.warming_up:
            self.samples_in_warmup += 1
            return
        volts = self._adc.voltage
        if self.model.fault_below_v is not None and volts < self.model.fault_below_v:
            if not self.faulted:
                self.faulted = True
                self._sink.event(
                    DeviceEvent(
                        self.device_id,
                        Kind.GAS,
                        EventType.FAULT,
                        detail=f"analogue output {volts:.2f} V: current loop broken",
                    )
                )
            return
        if self.faulted:
            log.info("gas analogue output back device=%s volts=%.2f", self.device_id, volts)
            self.faulted = False
            self._sink.event(
                DeviceEvent(
                    self.device_id,
                    Kind.GAS,
                    EventType.RESTORE,
                    detail=f"analogue output back ({volts:.2f} V)",
                )
            )
        pct = round(self.model.pct_lel(volts), 2)
        self.last_pct_lel = pct
        self._sink.sample(Sample(self.device_id, Kind.GAS, Values(ch4_pct_lel=pct)))
