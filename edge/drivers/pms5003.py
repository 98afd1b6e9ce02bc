"""Plantower PMS5003 particle sensor on a UART (9600 baud, 8N1, active mode).

Frame (datasheet, "transport protocol – active mode"), 32 bytes, big-endian:

    0x42 0x4D | frame length = 2×13+2 = 28 (u16) | data 1..13 (u16 each) | checksum (u16)

data 1–3: PM1.0 / PM2.5 / PM10 in µg/m³ under "standard particle" (CF=1) conditions;
data 4–6: PM1.0 / PM2.5 / PM10 in µg/m³ under atmospheric environment (what we report);
data 7–12: particles > 0.3 / 0.5 / 1.0 / 2.5 / 5.0 / 10 µm per 0.1 L; data 13: reserved.
checksum = sum of the first 30 bytes (start bytes included), low 16 bits.

A frame with a bad length or checksum, or cut short, is counted and skipped, never read;
the parser resynchronises on the start bytes.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import serial
from pydantic import ValidationError

from contract.devices import AirModel
from contract.models import Kind, Values
from contract.site import DeviceSpec
from edge.drivers.base import Sample, Sink
from edge.drivers.serial_port import SerialDevice

START = b"\x42\x4d"
FRAME_BYTES = 32
FRAME_LENGTH = 28  # the length field: 13 data words + checksum


@dataclass(frozen=True)
class Pms5003Frame:
    pm1_cf1: int
    pm25_cf1: int
    pm10_cf1: int
    pm1_atm: int
    pm25_atm: int
    pm10_atm: int
    n_0_3um: int
    n_0_5um: int
    n_1_0um: int
    n_2_5um: int
    n_5_0um: int
    n_10um: int
    reserved: int

    def values(self) -> Values:
        return Values(
            pm1_ugm3=float(self.pm1_atm),
            pm25_ugm3=float(self.pm25_atm),
            pm10_ugm3=float(self.pm10_atm),
        )


def encode_frame(
    pm1: int,
    pm25: int,
    pm10: int,
    *,
    cf1: tuple[int, int, int] | None = None,
    counts: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0),
    reserved: int = 0,
    checksum: int | None = None,
) -> bytes:
    """A frame as the sensor sends it (atmospheric values `pm1`, `pm25`, `pm10` in µg/m³).

    `checksum` overrides the computed one (to make a corrupt frame).
    """
    words = (*(cf1 or (pm1, pm25, pm10)), pm1, pm25, pm10, *counts, reserved)
    body = START + struct.pack(">H13H", FRAME_LENGTH, *words)
    value = sum(body) & 0xFFFF if checksum is None else checksum
    return body + struct.pack(">H", value)


@dataclass
class ParserStats:
    frames: int = 0
    bad_checksum: int = 0
    bad_length: int = 0
    truncated: int = 0
    garbage_bytes: int = 0
    out_of_range: int = 0  # valid frames with values the contract does not accept

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FrameParser:
    """Bytes in, valid frames out. A partial frame followed by `gap_s` of silence is dropped."""

    def __init__(self, gap_s: float = 0.5):
        self.gap_s = gap_s
        self.stats = ParserStats()
        self._buf = bytearray()
        self._last = 0.0

    def feed(self, data: bytes, now: float | None = None) -> list[Pms5003Frame]:
        now = time.monotonic() if now is None else now
        self.idle(now)
        self._last = now
        self._buf += data
        return self._parse()

    def idle(self, now: float | None = None) -> None:
        """No bytes for a while: a partial frame older than `gap_s` was cut short."""
        now = time.monotonic() if now is None else now
        if self._buf and now - self._last > self.gap_s:
            if self._buf.startswith(START):
                self.stats.truncated += 1
            else:
                self.stats.garbage_bytes += len(self._buf)
            self._buf.clear()

    def _parse(self) -> list[Pms5003Frame]:
        frames: list[Pms5003Frame] = []
        buf = self._buf
        while True:
            start = buf.find(START)
            if start < 0:
                keep = 1 if buf.endswith(START[:1]) else 0
                self.stats.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return frames
            if start:
                self.stats.garbage_bytes += start
                del buf[:start]
            if len(buf) < 4:
                return frames
            if (buf[2] << 8 | buf[3]) != FRAME_LENGTH:
                self.stats.bad_length += 1
                del buf[:2]
                continue
            if len(buf) < FRAME_BYTES:
                return frames
            frame = bytes(buf[:FRAME_BYTES])
            if sum(frame[:30]) & 0xFFFF != (frame[30] << 8 | frame[31]):
                self.stats.bad_checksum += 1
                del buf[:2]
                continue
            del buf[:FRAME_BYTES]
            self.stats.frames += 1
            frames.append(Pms5003Frame(*struct.unpack(">13H", frame[4:30])))


class AirSensor(SerialDevice):
    """Reads a PMS5003 on a serial port (a thread); one reading per `sample_period_s`.

    Every valid frame tells the sink the sensor is alive (supervision, `edge.supervision`,
    raises the fault when frames stop). A port that cannot be opened or read is one fault
    event, and a `restore` once valid frames come again.
    """

    thread_prefix = "pms5003"
    restore_detail = "frames again"

    def __init__(
        self,
        spec: DeviceSpec,
        model: AirModel,
        *,
        port: str,
        sink: Sink,
        clock: Callable[[], float] = time.monotonic,
        open_serial: Callable[..., Any] = serial.Serial,
    ):
        self.device_id = spec.id
        self.model = model
        self._init_serial(
            port, baudrate=model.baudrate, read_timeout_s=0.25, open_serial=open_serial
        )
        self.parser = FrameParser()
        self.last_frame: Pms5003Frame | None = None
        self.port_fault = False
        self._sink = sink
        self._clock = clock
        #: set once the port is open (bytes sent before that are discarded by the open)
        self.port_open = threading.Event()

    def _run(self) -> None:
        port: Any = None
        next_due = self._clock()
        while not self._stop.is_set():
            if port is None:
                try:
                    port = self._open()
                except (OSError, serial.SerialException) as exc:
                    self._fault(f"cannot open {self.port}: {exc}")
                    self._stop.wait(2.0)
                    continue
                self._port = port
                self.port_open.set()
            try:
                data = port.read(1)
                if data:
                    data += port.read(port.in_waiting)
            except (OSError, serial.SerialException) as exc:
                self._fault(f"reading {self.port} failed: {exc}")
                self.port_open.clear()
                self._port = None
                port.close()
                port = None
                continue
            now = self._clock()
            frames = self.parser.feed(data, now) if data else []
            if not data:
                self.parser.idle(now)
            for frame in frames:
                self.last_frame = frame
                self._sink.alive(self.device_id)
                if self.port_fault:
                    self._restore()
                if now >= next_due:
                    try:
                        values = frame.values()
                    except ValidationError:
                        self.parser.stats.out_of_range += 1
                        continue
                    next_due = now + self.model.sample_period_s
                    self._sink.sample(Sample(self.device_id, Kind.AIR, values))
        self._port = None
        if port is not None:
            port.close()
