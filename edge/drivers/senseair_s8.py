"""Senseair S8 CO2 sensor on a UART, polled over Modbus RTU (9600 baud, 8N1).

From the sensor's Modbus specification ("Modbus on Senseair S8"): the CO2 reading is input
register IR4, address 0x0003, read with function 0x04 (read input registers). Any sensor
answers address 0xFE. Frames end with a CRC-16/Modbus (polynomial 0xA001 reflected, initial
0xFFFF), low byte first. The datasheet's own example:

    request   FE 04 00 03 00 01 D5 C5       read 1 input register from 0x0003
    reply     FE 04 02 01 90 AC D8          2 data bytes: 0x0190 = 400 ppm

An exception reply is `address, function | 0x80, exception code, CRC`.

A reply with a bad CRC, the wrong address or function, the wrong length, an exception code,
or no reply within `reply_timeout_s` is counted and skipped, never reported as a reading.
Each valid reply tells the sink the sensor is alive (supervision raises the fault when they
stop); a port that cannot be opened or read is one fault, and a `restore` once replies come.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import serial

from contract.devices import Co2Model
from contract.models import Kind, Values
from contract.site import DeviceSpec
from edge.drivers.base import Sample, Sink
from edge.drivers.serial_port import SerialDevice

log = logging.getLogger(__name__)

READ_INPUT_REGISTERS = 0x04
CO2_REGISTER = 0x0003  # IR4
ANY_ADDRESS = 0xFE


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16_modbus(body))


def read_request(address: int = ANY_ADDRESS, register: int = CO2_REGISTER, count: int = 1) -> bytes:
    """The request frame: read `count` input registers from `register`."""
    return _with_crc(struct.pack(">BBHH", address, READ_INPUT_REGISTERS, register, count))


def encode_reply(ppm: int, *, address: int = ANY_ADDRESS, crc: int | None = None) -> bytes:
    """The sensor's reply carrying one register (`crc` overrides the computed one)."""
    body = struct.pack(">BBBH", address, READ_INPUT_REGISTERS, 2, ppm)
    return body + struct.pack("<H", crc16_modbus(body) if crc is None else crc)


def encode_exception(code: int, *, address: int = ANY_ADDRESS) -> bytes:
    return _with_crc(bytes([address, READ_INPUT_REGISTERS | 0x80, code]))


def parse_request(frame: bytes) -> tuple[int, int, int, int] | None:
    """(address, function, register, count) of a valid request frame, else None."""
    if len(frame) != 8 or crc16_modbus(frame) != 0:
        return None
    address, function, register, count = struct.unpack(">BBHH", frame[:6])
    return address, function, register, count


class ReplyError(ValueError):
    """A reply that is not a reading; `reason` names the ReplyStats counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def parse_reply(frame: bytes, address: int = ANY_ADDRESS) -> int:
    """The register value of a valid one-register reply, or ReplyError saying why not."""
    if len(frame) < 5:
        raise ReplyError("bad_frame", f"{len(frame)} bytes is too short for a reply")
    if crc16_modbus(frame) != 0:
        raise ReplyError("bad_crc", f"CRC mismatch in {frame.hex(' ')}")
    if frame[0] != address:
        raise ReplyError("bad_frame", f"reply from address {frame[0]:#04x}")
    if frame[1] == READ_INPUT_REGISTERS | 0x80:
        raise ReplyError("exception", f"exception code {frame[2]}")
    if frame[1] != READ_INPUT_REGISTERS or frame[2] != 2 or len(frame) != 7:
        raise ReplyError("bad_frame", f"unexpected reply {frame.hex(' ')}")
    return int(struct.unpack(">H", frame[3:5])[0])


@dataclass
class ReplyStats:
    replies: int = 0
    bad_crc: int = 0
    bad_frame: int = 0
    exception: int = 0
    no_reply: int = 0
    out_of_range: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def read_reply(port: Any, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> bytes:
    """Read one reply frame: the header says how long it is. Returns what arrived (maybe
    short, maybe empty) once the frame is complete or `timeout_s` has passed."""
    deadline = clock() + timeout_s
    frame = bytearray()
    want = 3  # address, function, byte count (or exception code)
    while len(frame) < want:
        if clock() >= deadline:
            break
        frame += port.read(want - len(frame))
        if len(frame) >= 3:
            want = 5 if frame[1] & 0x80 else 5 + frame[2]
    return bytes(frame)


class Co2Sensor(SerialDevice):
    """Polls an S8 on a serial port (a thread) every `sample_period_s`."""

    thread_prefix = "s8"
    restore_detail = "replies again"

    def __init__(
        self,
        spec: DeviceSpec,
        model: Co2Model,
        *,
        port: str,
        sink: Sink,
        open_serial: Callable[..., Any] = serial.Serial,
    ):
        self.device_id = spec.id
        self.model = model
        self._init_serial(
            port,
            baudrate=model.baudrate,
            read_timeout_s=min(0.1, model.reply_timeout_s),
            open_serial=open_serial,
        )
        self.stats = ReplyStats()
        self.last_ppm: int | None = None
        self.port_fault = False
        self._sink = sink
        self._request = read_request(model.address)

    def _run(self) -> None:
        port: Any = None
        while not self._stop.is_set():
            if port is None:
                try:
                    port = self._open()
                except (OSError, serial.SerialException) as exc:
                    self._fault(f"cannot open {self.port}: {exc}")
                    self._stop.wait(2.0)
                    continue
                self._port = port
            started = time.monotonic()
            try:
                self._poll(port)
            except (OSError, serial.SerialException) as exc:
                self._fault(f"talking to {self.port} failed: {exc}")
                self._port = None
                port.close()
                port = None
                continue
            self._stop.wait(max(0.0, started + self.model.sample_period_s - time.monotonic()))
        self._port = None
        if port is not None:
            port.close()

    def _poll(self, port: Any) -> None:
        port.reset_input_buffer()  # a late reply to an earlier request is not this one
        port.write(self._request)
        frame = read_reply(port, self.model.reply_timeout_s)
        if self._stop.is_set():
            return
        if not frame:
            self.stats.no_reply += 1
            log.debug("s8 no reply device=%s", self.device_id)
            return
        try:
            ppm = parse_reply(frame, self.model.address)
        except ReplyError as exc:
            setattr(self.stats, exc.reason, getattr(self.stats, exc.reason) + 1)
            log.info(
                "s8 reply skipped device=%s reason=%s detail=%r",
                self.device_id,
                exc.reason,
                str(exc),
            )
            return
        self.stats.replies += 1
        self._sink.alive(self.device_id)
        if self.port_fault:
            self._restore()
        if ppm > self.model.max_ppm:
            self.stats.out_of_range += 1
            return
        self.last_ppm = ppm
        self._sink.sample(Sample(self.device_id, Kind.AIR, Values(co2_ppm=float(ppm))))
