"""Senseair S8 over Modbus RTU: datasheet frames, CRC-16/Modbus, and a real pseudo-terminal
with a simulated sensor answering the driver's requests."""

from __future__ import annotations

import pytest

from contract.models import EventType, Kind
from edge.drivers.senseair_s8 import (
    ReplyError,
    crc16_modbus,
    encode_exception,
    encode_reply,
    parse_reply,
    read_request,
)
from tests.edge.helpers import FIELD_SITE, settle

CO2 = "co2-0201"
# From the S8's Modbus documentation: read IR4 (CO2) from any sensor, and its reply, 400 ppm.
DATASHEET_REQUEST = bytes.fromhex("FE 04 00 03 00 01 D5 C5")
DATASHEET_REPLY = bytes.fromhex("FE 04 02 01 90 AC D8")
FAST = {"co2_senseair_s8": {"sample_period_s": 0.05, "reply_timeout_s": 0.2}}


def test_the_datasheet_frames():
    assert read_request() == DATASHEET_REQUEST
    assert encode_reply(400) == DATASHEET_REPLY
    assert parse_reply(DATASHEET_REPLY) == 400
    # A frame with its CRC appended has a CRC of zero: the receiver's check.
    assert crc16_modbus(DATASHEET_REQUEST) == 0 and crc16_modbus(DATASHEET_REPLY) == 0
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (DATASHEET_REPLY[:-1] + b"\xd9", "bad_crc"),
        (bytes([0xFE, 0x04, 0x02, 0x01, 0x91]) + DATASHEET_REPLY[-2:], "bad_crc"),
        (encode_reply(400, address=0x01), "bad_frame"),
        (encode_exception(4), "exception"),
        (DATASHEET_REPLY[:4], "bad_frame"),
    ],
)
def test_bad_replies_are_refused_with_a_reason(frame, reason):
    with pytest.raises(ReplyError) as info:
        parse_reply(frame)
    assert info.value.reason == reason


@pytest.fixture
def rig(rig_factory):
    return rig_factory("gw-field", site=FIELD_SITE, only={CO2}, **FAST)


def test_replies_through_a_pty_become_readings(rig):
    rig.hw.set_co2(CO2, 400)  # (it may have polled once already: the default is 450)
    sample = rig.sink.wait(
        lambda: [s for s in rig.sink.samples_of(CO2) if s.values.co2_ppm == 400]
    )[0]
    assert (sample.kind, sample.values.present()) == (Kind.AIR, {"co2_ppm": 400.0})
    rig.hw.set_co2(CO2, 1250)
    rig.sink.wait(lambda: rig.sink.samples_of(CO2)[-1].values.co2_ppm == 1250)
    assert rig.hw.s8(CO2).bad_requests == 0, "every request had a valid CRC"
    assert rig.drivers[CO2].stats.replies >= 2


def test_corrupt_and_missing_replies_are_counted_and_skipped(rig):
    sensor, driver = rig.hw.s8(CO2), rig.drivers[CO2]
    rig.sink.wait(lambda: rig.sink.samples_of(CO2))
    sensor.ppm = 9999  # would be a reading: none of the bad replies below may deliver it
    sensor.faults[:] = ["bad_crc", "bad_crc", "exception", "silent", "garbage"]
    rig.sink.wait(lambda: not sensor.faults and driver.stats.no_reply >= 1, timeout=5)
    sensor.ppm = 600
    rig.sink.wait(lambda: rig.sink.samples_of(CO2)[-1].values.co2_ppm == 600)
    stats = driver.stats
    assert (stats.bad_crc, stats.exception, stats.no_reply) == (2, 1, 1)
    assert stats.bad_frame >= 1  # the garbage
    assert all(s.values.co2_ppm != 9999 for s in rig.sink.samples_of(CO2))
    assert rig.sink.of(CO2) == []


def test_an_absurd_reading_is_not_reported(rig):
    rig.hw.set_co2(CO2, 65000)
    rig.sink.wait(lambda: rig.drivers[CO2].stats.out_of_range >= 2)
    assert rig.sink.samples_of(CO2) == [] or all(
        s.values.co2_ppm != 65000 for s in rig.sink.samples_of(CO2)
    )


def test_a_dead_sensor_is_a_fault_and_a_restore(rig_factory):
    rig = rig_factory(
        "gw-field",
        site=FIELD_SITE,
        only={CO2},
        co2_senseair_s8={"sample_period_s": 0.05, "reply_timeout_s": 0.1, "report_interval_s": 0.4},
    )
    rig.sink.wait(lambda: rig.sink.samples_of(CO2))
    rig.hw.s8(CO2).silent = True
    rig.sink.wait(lambda: rig.sink.of(CO2, EventType.FAULT), timeout=3)
    settle(0.2)
    rig.hw.s8(CO2).silent = False
    rig.sink.wait(lambda: rig.sink.types(CO2) == [EventType.FAULT, EventType.RESTORE], timeout=3)
