"""The first rules core, on its own: which events and readings page the duty room, at what level."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.rules import AlarmDraft, Decision, Rules, load_rules
from cloud.settings import DEFAULT_RULES
from contract.models import Event, Reading, Values
from contract.site import ConfigFileError

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


@pytest.fixture
def rules() -> Rules:
    return Rules(load_rules(DEFAULT_RULES))


def drafts_of(decisions: list[Decision]) -> list[AlarmDraft]:
    """The alarms raised (or repeated), without the clears."""
    return [d for d in decisions if isinstance(d, AlarmDraft)]


def ev(kind: str, type_: str, device: str = "d1", **values: float) -> Event:
    return Event.model_validate(
        {
            "id": str(uuid.uuid4()),
            "gateway": "gw-1",
            "device": device,
            "boot": "b",
            "seq": 1,
            "ts": T0.isoformat(),
            "kind": kind,
            "type": type_,
            "values": values,
        }
    )


def reading(kind: str, at: datetime, **values: float) -> Reading:
    return Reading(device="d1", ts=at, kind=kind, values=Values(**values))


@pytest.mark.parametrize(
    ("kind", "type_", "rule", "level"),
    [
        ("call", "press", "call_for_help", 1),
        ("smoke", "alarm", "smoke_alarm", 1),
        ("gas", "alarm", "gas_alarm", 1),
        ("smoke", "fault", "device_fault", 3),
        ("air", "battery_low", "battery_low", 4),
    ],
)
def test_events_that_page(rules: Rules, kind: str, type_: str, rule: str, level: int) -> None:
    [draft] = drafts_of(rules.on_event(ev(kind, type_)))
    assert (draft.rule, draft.level) == (rule, level)


@pytest.mark.parametrize(
    ("kind", "type_"),
    [("call", "test"), ("call", "cancel"), ("smoke", "clear"), ("gateway", "heartbeat")],
)
def test_tests_heartbeats_and_clears_never_page_even_with_alarming_values(
    rules: Rules, kind: str, type_: str
) -> None:
    device = "gw-1" if kind == "gateway" else "d1"
    assert drafts_of(rules.on_event(ev(kind, type_, device=device, ch4_pct_lel=80))) == []


@pytest.mark.parametrize(
    ("pct", "level"), [(9.9, None), (10.0, 2), (24.9, 2), (25.0, 1), (80.0, 1)]
)
def test_methane_thresholds(rules: Rules, pct: float, level: int | None) -> None:
    drafts = drafts_of(rules.on_reading("gw-1", reading("gas", T0, ch4_pct_lel=pct)))
    assert [d.level for d in drafts] == ([] if level is None else [level])


def test_pm25_uses_the_24_hour_mean(rules: Rules) -> None:
    # 12 h at 90 µg/m³ then 12 h at 20: the 24 h mean is 55 (> 50, level IV), though the
    # latest reading is clean; a day later only the clean readings remain in the window.
    drafts = []
    for hour in range(24):
        value = 90.0 if hour < 12 else 20.0
        drafts = drafts_of(
            rules.on_reading("gw-1", reading("air", T0 + timedelta(hours=hour), pm25_ugm3=value))
        )
    assert [(d.rule, d.level, d.value) for d in drafts] == [("pm25_24h", 4, 55.0)]
    for hour in range(24, 49):
        drafts = drafts_of(
            rules.on_reading("gw-1", reading("air", T0 + timedelta(hours=hour), pm25_ugm3=20))
        )
    assert drafts == []


def test_co2_above_twice_the_limit_is_level_three(rules: Rules) -> None:
    drafts = drafts_of(rules.on_reading("gw-1", reading("air", T0, co2_ppm=2500)))
    assert [(d.rule, d.level) for d in drafts] == [("co2_1h", 3)]


def test_a_bad_rules_file_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "events: []\nthresholds:\n  - {rule: x, kind: gas, field: ch4_ppm, window_s: 0,"
        " zh: a, en: b, levels: [{above: 1, level: 5}]}\n"
    )
    with pytest.raises(ConfigFileError) as caught:
        load_rules(path)
    text = str(caught.value)
    assert str(path) in text and "thresholds.0" in text and "ch4_ppm" in text
