"""What every UART sensor driver shares: its own reader thread, and a serial port (8N1) that
can be opened again after a fault and whose blocked read can be woken to stop at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import serial


class SerialDevice:
    """Base of a driver that reads one serial port on its own thread; subclasses do `_run`."""

    thread_prefix = "serial"
    device_id: str

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
