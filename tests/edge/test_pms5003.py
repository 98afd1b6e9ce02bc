"""PMS5003: datasheet frames through a real pseudo-terminal; corrupt input counted, skipped."""

from __future__ import annotations

import time

import pytest

from contract.models import EventType, Kind
from edge.drivers.pms5003 import FrameParser, Pms5003Frame, encode_frame
from tests.edge.helpers import settle

AIR = "air-0201"
# A frame written out byte by byte from the datasheet layout (big-endian words):
#   42 4D | 00 1C (length 28)
#   00 11 00 22 00 31   PM1.0/2.5/10 CF=1: 17, 34, 49 µg/m³
#   00 10 00 21 00 30   PM1.0/2.5/10 atmospheric: 16, 33, 48 µg/m³
#   0B B8 03 84 00 C8 00 14 00 05 00 01   particles >0.3..>10 µm per 0.1 L
#   97 00               reserved (version 0x97, error code 0)
#   04 33               checksum = sum of the 30 bytes before it
DATASHEET_FRAME = bytes.fromhex("424d001c0011002200310010002100300bb8038400c800140005000197000433")
# Sensor left to the test: no periodic frames, every valid frame is a reading.
QUIET = {"frame_interval_s": 3600.0, "air_pms5003": {"sample_period_s": 0.05}}


def test_datasheet_frame_decodes():
    parser = FrameParser()
    (frame,) = parser.feed(DATASHEET_FRAME)
    assert frame == Pms5003Frame(17, 34, 49, 16, 33, 48, 3000, 900, 200, 20, 5, 1, 0x9700)
    values = frame.values()
    assert (values.pm1_ugm3, values.pm25_ugm3, values.pm10_ugm3) == (16, 33, 48)
    assert parser.stats.frames == 1 and parser.stats.bad_checksum == 0


def test_encoder_writes_the_datasheet_layout():
    frame = encode_frame(
        16, 33, 48, cf1=(17, 34, 49), counts=(3000, 900, 200, 20, 5, 1), reserved=0x9700
    )
    assert frame == DATASHEET_FRAME


@pytest.mark.parametrize(
    ("stream", "stat"),
    [
        (encode_frame(1, 2, 3, checksum=0x1234), "bad_checksum"),
        (b"\x42\x4d\x00\x1d" + bytes(28), "bad_length"),
        (b"\x00\xff\x13garbage\x42", "garbage_bytes"),
        (encode_frame(1, 2, 3)[:20], "bad_checksum"),  # cut short, the next frame follows
    ],
)
def test_parser_skips_corrupt_input_and_resyncs(stream, stat):
    parser = FrameParser()
    frames = parser.feed(stream + DATASHEET_FRAME, now=0.0)
    assert [f.pm25_atm for f in frames] == [33]
    assert getattr(parser.stats, stat) >= 1


def test_parser_drops_a_frame_cut_short_by_silence():
    parser = FrameParser(gap_s=0.5)
    assert parser.feed(DATASHEET_FRAME[:17], now=0.0) == []
    parser.idle(now=0.7)
    assert parser.stats.truncated == 1
    assert [f.pm10_atm for f in parser.feed(DATASHEET_FRAME, now=1.0)] == [48]


def test_frames_through_a_pty_become_readings(rig_factory):
    rig = rig_factory(**QUIET)
    assert rig.hw.write_serial(AIR, DATASHEET_FRAME) == 32
    (sample,) = rig.sink.wait(lambda: rig.sink.samples_of(AIR))
    assert sample.kind is Kind.AIR
    assert sample.values.present() == {"pm1_ugm3": 16.0, "pm25_ugm3": 33.0, "pm10_ugm3": 48.0}
    time.sleep(0.1)  # one reading per sample period (0.05 s here)
    rig.hw.set_air(AIR, 5, 75, 110)
    rig.sink.wait(lambda: len(rig.sink.samples_of(AIR)) == 2)
    assert rig.sink.samples_of(AIR)[1].values.pm25_ugm3 == 75


def test_corrupt_frames_on_the_wire_are_counted_and_skipped(rig_factory):
    rig = rig_factory(**QUIET)
    sensor = rig.drivers[AIR]
    good = encode_frame(10, 20, 30)
    rig.hw.write_serial(AIR, encode_frame(999, 999, 999, checksum=0xBEEF))  # bad checksum
    rig.hw.write_serial(AIR, b"\x13\x37noise\x42\x00")  # garbage between frames
    rig.hw.write_serial(AIR, encode_frame(888, 888, 888)[:21])  # truncated, then silence
    time.sleep(0.8)
    rig.hw.write_serial(AIR, good)
    time.sleep(0.1)  # one reading per sample period (0.05 s here)
    rig.hw.write_serial(AIR, encode_frame(777, 777, 777)[:12] + good)  # cut, next follows
    rig.sink.wait(lambda: len(rig.sink.samples_of(AIR)) == 2)
    assert {s.values.pm25_ugm3 for s in rig.sink.samples_of(AIR)} == {20}
    stats = sensor.parser.stats
    assert stats.frames == 2
    assert stats.bad_checksum == 2
    assert stats.truncated == 1
    assert stats.garbage_bytes >= 7


def test_silent_sensor_is_one_fault_then_a_restore(rig_factory):
    rig = rig_factory(
        frame_interval_s=3600.0, air_pms5003={"sample_period_s": 0.05, "report_interval_s": 0.4}
    )
    (fault,) = rig.sink.wait(lambda: rig.sink.of(AIR, EventType.FAULT), timeout=3)
    assert "silent" in fault.detail
    settle(0.3)
    assert len(rig.sink.of(AIR, EventType.FAULT)) == 1, "one fault, not one per check"
    rig.hw.set_air(AIR, 1, 2, 3)
    rig.sink.wait(lambda: rig.sink.samples_of(AIR))
    assert rig.sink.types(AIR) == [EventType.FAULT, EventType.RESTORE]
    assert rig.sink.of(AIR, EventType.RESTORE)[0].values.offline_s >= 0.4


def test_every_valid_frame_is_a_sign_of_life(rig_factory):
    rig = rig_factory(frame_interval_s=3600.0, air_pms5003={"sample_period_s": 3600})
    for _ in range(3):
        rig.hw.write_serial(AIR, DATASHEET_FRAME)
        time.sleep(0.05)
    rig.hw.write_serial(AIR, encode_frame(1, 2, 3, checksum=0x1234))
    stats = rig.drivers[AIR].parser.stats
    rig.sink.wait(lambda: stats.frames == 3 and stats.bad_checksum == 1)
    assert len(rig.sink.samples_of(AIR)) == 1  # one reading per sample period
    # heard: each valid frame (alive) and the reading; never the corrupt frame
    assert rig.supervisor.heard[AIR] == 3 + 1
