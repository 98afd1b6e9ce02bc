"""The message models accept what the protocol allows and refuse the rest with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contract.models import (
    MAX_READINGS_PER_BATCH,
    Command,
    Event,
    Kind,
    Reply,
    Status,
    Telemetry,
    Values,
    decode,
    encode,
)


def event_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "id": "0b7e4c5e-3f1a-4d7c-9a52-1c2d3e4f5a6b",
        "gateway": "gw-ld01",
        "device": "gas-0101",
        "boot": "3f9a1c7e",
        "seq": 59,
        "ts": "2026-11-22T04:21:30.005Z",
        "kind": "gas",
        "type": "alarm",
        "values": {"ch4_pct_lel": 27.5},
    }
    data.update(changes)
    return data


def reading(device: str = "air-0201", **values: float) -> dict[str, Any]:
    return {
        "device": device,
        "ts": "2026-11-22T04:15:00Z",
        "kind": "air",
        "values": values or {"pm25_ugm3": 38},
    }


def telemetry_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "tb-3f9a1c7e-000212",
        "gateway": "gw-ld01",
        "boot": "3f9a1c7e",
        "seq": 212,
        "readings": [reading()],
    }
    data.update(changes)
    return data


def refusal(model: type[BaseModel], data: dict[str, Any]) -> str:
    """The reason a message off the wire is refused (it must be refused)."""
    with pytest.raises(ValidationError) as caught:
        decode(model, json.dumps(data))
    return str(caught.value)


# ---- accepted ------------------------------------------------------------------------------


def test_a_valid_event_round_trips_through_encode() -> None:
    event = Event.model_validate_json(json.dumps(event_data(replayed=True)))
    wire = encode(event)
    assert Event.model_validate_json(wire) == event
    assert json.loads(wire)["values"] == {"ch4_pct_lel": 27.5}  # absent units left out
    assert b"null" not in wire
    assert event.values.present() == {"ch4_pct_lel": 27.5}


def test_defaults_for_optional_fields() -> None:
    data = event_data()
    del data["v"], data["values"]
    event = Event.model_validate_json(json.dumps(data))
    assert (event.v, event.values.present(), event.clock_synced, event.replayed) == (
        1,
        {},
        True,
        False,
    )


def test_an_offset_is_normalised_to_utc() -> None:
    event = Event.model_validate_json(json.dumps(event_data(ts="2026-11-22T12:21:30.005+08:00")))
    assert event.ts == datetime(2026, 11, 22, 4, 21, 30, 5000, tzinfo=UTC)
    assert event.ts.utcoffset() == timedelta(0)
    assert json.loads(encode(event))["ts"].endswith("Z")
    batch = Telemetry.model_validate_json(
        json.dumps(telemetry_data(readings=[{**reading(), "ts": "2026-11-22T12:15:00+08:00"}]))
    )
    assert batch.readings[0].ts == datetime(2026, 11, 22, 4, 15, tzinfo=UTC)


def test_gateway_events_name_the_gateway() -> None:
    data = event_data(device="gw-ld01", kind="gateway", type="heartbeat", values={})
    assert Event.model_validate_json(json.dumps(data)).kind is Kind.GATEWAY


def test_a_full_telemetry_batch_and_every_other_message() -> None:
    many = [reading(f"air-{i:04d}") for i in range(MAX_READINGS_PER_BATCH)]
    assert len(Telemetry.model_validate_json(json.dumps(telemetry_data(readings=many))).readings)
    status = Status(gateway="gw-ld01", state="online", boot="b1", ts="2026-11-22T04:00:00Z")
    assert Status.model_validate_json(encode(status)) == status
    command = Command(id="acc-41-0416123", ts=datetime.now(UTC), device="call-0101")
    assert Command.model_validate_json(encode(command)) == command
    reply = Reply(id="acc-41-0416123", gateway="gw-ld01", ok=True)
    assert Reply.model_validate_json(encode(reply)) == reply


# ---- refused, with a reason ----------------------------------------------------------------


def test_unknown_field_is_refused() -> None:
    reason = refusal(Event, event_data(severity="high"))
    assert "severity" in reason and "Extra inputs are not permitted" in reason
    assert "extra" in refusal(Telemetry, telemetry_data(readings=[{**reading(), "rssi": -70}]))


def test_unknown_unit_is_refused() -> None:
    reason = refusal(Event, event_data(values={"ch4_ppm": 5000}))
    assert "values.ch4_ppm" in reason and "Extra inputs" in reason


def test_values_out_of_range_are_refused() -> None:
    assert "values.ch4_pct_lel" in refusal(Event, event_data(values={"ch4_pct_lel": 101}))
    assert "values.temp_c" in refusal(Event, event_data(values={"temp_c": -61}))
    assert "values.co2_ppm" in refusal(Event, event_data(values={"co2_ppm": -1}))


@pytest.mark.parametrize(
    "ts", ["2026-11-22T04:21:30", "2026-11-22T04:21:30.005", "2026-11-22", "yesterday", ""]
)
def test_a_time_without_offset_is_refused(ts: str) -> None:
    reason = refusal(Event, event_data(ts=ts))
    assert "ts" in reason
    if ts.startswith("2026-11-22T"):
        assert "timezone" in reason
    assert "ts" in refusal(Status, {"gateway": "g", "state": "online", "boot": "b", "ts": ts})


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("gateway", "GW-LD01"),
        ("gateway", "gw/ld01"),
        ("gateway", "gw+"),
        ("gateway", "-gw"),
        ("gateway", ""),
        ("gateway", "g" * 64),
        ("device", "smoke 0102"),
        ("device", "烟感"),
        ("device", "x' OR 1=1 --"),
        ("id", "short"),
        ("id", "id with spaces"),
        ("id", "i" * 65),
        ("boot", ""),
        ("boot", "b" * 33),
        ("boot", "a/b"),
    ],
)
def test_bad_ids_are_refused(field: str, bad: str) -> None:
    reason = refusal(Event, event_data(**{field: bad}))
    assert field in reason and "pattern" in reason


@pytest.mark.parametrize("seq", [-1, 2**53 + 1, 1.5])
def test_seq_outside_its_range_is_refused(seq: float) -> None:
    assert "seq" in refusal(Event, event_data(seq=seq))
    assert "seq" in refusal(Telemetry, telemetry_data(seq=seq))


def test_gateway_kind_must_name_the_gateway() -> None:
    reason = refusal(Event, event_data(kind="gateway", type="heartbeat", device="smoke-0102"))
    assert "kind 'gateway' events must name the gateway itself as device" in reason


def test_unknown_kind_type_state_and_version_are_refused() -> None:
    assert "kind" in refusal(Event, event_data(kind="fire"))
    assert "type" in refusal(Event, event_data(type="ALARM"))
    assert "v" in refusal(Event, event_data(v=3))
    assert "v" in refusal(
        Status,
        {"gateway": "g", "state": "online", "boot": "b", "v": 2, "ts": "2026-11-22T04:00:00Z"},
    )
    status = {"gateway": "g", "state": "sleeping", "boot": "b", "ts": "2026-11-22T04:00:00Z"}
    assert "state" in refusal(Status, status)


def test_missing_fields_are_named() -> None:
    data = event_data()
    del data["boot"], data["ts"]
    reason = refusal(Event, data)
    assert "boot" in reason and "ts" in reason and "Field required" in reason


def test_an_empty_telemetry_batch_is_refused() -> None:
    reason = refusal(Telemetry, telemetry_data(readings=[]))
    assert "readings" in reason and "at least 1 item" in reason


def test_too_many_readings_are_refused() -> None:
    many = [reading(f"air-{i:04d}") for i in range(MAX_READINGS_PER_BATCH + 1)]
    reason = refusal(Telemetry, telemetry_data(readings=many))
    assert "readings" in reason and f"at most {MAX_READINGS_PER_BATCH} items" in reason


def test_a_reading_without_values_is_refused() -> None:
    empty = {**reading(), "values": {}}
    assert "a reading needs at least one value" in refusal(
        Telemetry, telemetry_data(readings=[empty])
    )


def test_command_args_and_reply_detail_are_bounded() -> None:
    command = {"id": "cmd-00000001", "ts": "2026-11-22T04:00:00Z", "args": {"nested": {"a": 1}}}
    assert "args.nested" in refusal(Command, command)
    reply = {"id": "cmd-00000001", "gateway": "gw-ld01", "ok": False, "detail": "x" * 501}
    assert "detail" in refusal(Reply, reply)


def test_values_are_frozen() -> None:
    values = Values(co2_ppm=800)
    with pytest.raises(ValidationError):
        values.co2_ppm = 900  # type: ignore[misc]  # on purpose: mypy knows it is frozen too


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": "59"},
        {"ts": 1763784900},
        {"clock_synced": "yes"},
        {"values": {"ch4_pct_lel": "27.5"}},
    ],
    ids=["seq-string", "ts-number", "bool-string", "value-string"],
)
def test_wrong_json_types_are_refused(changes: dict[str, Any]) -> None:
    refusal(Event, event_data(**changes))
