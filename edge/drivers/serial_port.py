"""What every UART sensor driver shares: its own reader thread, and a serial port (8N1) that
can be opened again after a fault and whose blocked read can be woken to stop at once."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

from contract.models import EventType, Kind
from edge.drivers.base import DeviceEvent, Sink

log = logging.getLogger(__name__)


class SerialDevice:
    """Base of a driver that reads one serial port on its own thread; subclasses do `_run`."""

    thread_prefix = "serial"
    #: what a `restore` event says when the sensor talks again after a fault
    restore_detail = "talking again"
    device_id: str
    port_fault: bool
    _sink: Sink

    def _init_serial(
        self,
        port: str,
        *,
        baudrate: int,
        read_timeout_s: float,
        open_serial: Callable[..., Any],
    ) -> None:
        self.port = port
        self._baudrate = baudrate
        self._read_timeout_s = read_timeout_s
        self._open_serial = open_serial
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: Any = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"{self.thread_prefix}-{self.device_id}", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            # Wake the blocked read at once (the reader may be closing the port right now).
            with contextlib.suppress(OSError, serial.SerialException):
                port.cancel_read()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _open(self) -> Any:
        return self._open_serial(
            self.port,
            baudrate=self._baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=self._read_timeout_s,
        )

    def _run(self) -> None:
        raise NotImplementedError

    def _fault(self, detail: str) -> None:
        """The port cannot be opened or read: one fault event until it recovers."""
        if not self.port_fault:
            self.port_fault = True
            log.warning("%s fault device=%s detail=%r", self.thread_prefix, self.device_id, detail)
            self._sink.event(DeviceEvent(self.device_id, Kind.AIR, EventType.FAULT, detail=detail))

    def _restore(self) -> None:
        self.port_fault = False
        log.info("%s %s device=%s", self.thread_prefix, self.restore_detail, self.device_id)
        self._sink.event(
            DeviceEvent(self.device_id, Kind.AIR, EventType.RESTORE, detail=self.restore_detail)
        )
