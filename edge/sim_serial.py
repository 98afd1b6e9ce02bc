"""The simulator's serial side: a pseudo-terminal standing in for each UART sensor's wire
(`PtyPort`: the driver opens its slave side with pyserial), and a Senseair S8 answering
Modbus RTU requests on one (`MockS8`: checks each request's CRC, answers a read of IR4 with
the datasheet's reply frame, or on demand a corrupt one, an exception, or nothing).
"""

from __future__ import annotations

import fcntl
import os
import threading
import tty

from edge.drivers.senseair_s8 import (
    CO2_REGISTER,
    READ_INPUT_REGISTERS,
    encode_exception,
    encode_reply,
    parse_request,
)


class PtyPort:
    """A pseudo-terminal standing in for a UART: `path` is what the driver opens."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline before the driver configures the port
        flags = fcntl.fcntl(self._master, fcntl.F_GETFL)
        fcntl.fcntl(self._master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.path = os.ttyname(self._slave)
        self.dropped_bytes = 0
        self._lock = threading.Lock()
        self._closed = False

    def write(self, data: bytes) -> int:
        """Send bytes down the wire; what the reader never picks up is lost, like a UART."""
        with self._lock:
            if self._closed:
                return 0
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                written = 0
            self.dropped_bytes += len(data) - written
            return written

    def read(self, limit: int = 256) -> bytes:
        """What the driver wrote since the last read (b"" if nothing)."""
        with self._lock:
            if self._closed:
                return b""
            try:
                return os.read(self._master, limit)
            except (BlockingIOError, OSError):
                return b""

    def fileno(self) -> int:
        return self._master

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._master)
                os.close(self._slave)


class MockS8:
    """The slave side of a Senseair S8: answers Modbus RTU requests on a pseudo-terminal."""

    def __init__(self, port: PtyPort, *, address: int = 0xFE, ppm: int = 450):
        self.port = port
        self.address = address
        self.ppm = ppm
        self.requests = 0
        self.bad_requests = 0
        #: what the next replies do: "ok", "bad_crc", "exception", "silent", "garbage"
        self.faults: list[str] = []
        self.silent = False  # the sensor is dead: no reply at all
        self._buf = bytearray()

    def on_bytes(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8:
            request = parse_request(bytes(self._buf[:8]))
            if request is None:
                self.bad_requests += 1
                del self._buf[:1]  # resynchronise
                continue
            del self._buf[:8]
            self.requests += 1
            self._answer(*request)

    def _answer(self, address: int, function: int, register: int, count: int) -> None:
        if self.silent or address not in (self.address, 0xFE):
            return
        mode = self.faults.pop(0) if self.faults else "ok"
        if mode == "silent":
            return
        if function != READ_INPUT_REGISTERS or register != CO2_REGISTER or count != 1:
            self.port.write(encode_exception(2, address=self.address))  # illegal address
            return
        if mode == "exception":
            self.port.write(encode_exception(4, address=self.address))  # device failure
        elif mode == "bad_crc":
            good = encode_reply(self.ppm, address=self.address)
            self.port.write(good[:-2] + bytes([good[-2] ^ 0xFF, good[-1]]))
        elif mode == "garbage":
            self.port.write(b"\x13\x37\x00")
        else:
            self.port.write(encode_reply(self.ppm, address=self.address))
