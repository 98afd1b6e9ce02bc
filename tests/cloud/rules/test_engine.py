"""The rules core's semantics, pure: clears, hysteresis, holds, rates, counts, latching,
per-model rules, supervision and inhibition, and a rules file changed while running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.rules import AlarmDraft, Clear, Rules, RulesCore, load_rules
from cloud.rules.alarm_rules import INERT, NEVER_RAISE
from cloud.settings import DEFAULT_RULES
from contract.models import EventType, Reading, Values
from contract.site import ConfigFileError
from tests.cloud.helpers import T0, default_rules_dict, event, rules_file

START = datetime.fromtimestamp(T0, UTC)
DEVICES = {
    ("gw-1", "gas-1"): "gas_mcp3008",
    ("gw-1", "air-1"): "air_pms5003",
    ("gw-1", "smoke-1"): "smoke_dry_contact",
    ("gw-1", "call-1"): "call_button_gpio",
    ("gw-2", "air-2"): "air_pms5003",
}


@pytest.fixture
def rules() -> Rules:
    return Rules(load_rules(DEFAULT_RULES))


def reading(kind: str, at: float, device: str = "gas-1", **values: float) -> Reading:
    return Reading(
        device=device,
        ts=START + timedelta(seconds=at),
        kind=kind,
        values=Values(**values),
    )


def kinds(decisions: list[Any]) -> list[str]:
    return [
        f"raise {d.rule} {d.level}" if isinstance(d, AlarmDraft) else f"clear {d.rule}"
        for d in decisions
    ]


# ---- what never pages ------------------------------------------------------------------------


@pytest.mark.parametrize("type_", sorted(t.value for t in EventType if t.value in NEVER_RAISE))
def test_ends_tests_and_heartbeats_never_page_even_while_a_rule_fires(
    rules: Rules, type_: str
) -> None:
    # `restore` (a fault ended) among them, whenever the contract has it
    for kind, device in (("smoke", "smoke-1"), ("gas", "gas-1"), ("call", "call-1")):
        rules.on_event(event(device, kind, "fault", gateway="gw-1"))
        decisions = rules.on_event(
            event(device, kind, type_, gateway="gw-1", ch4_pct_lel=80.0), None, T0
        )
        assert not [d for d in decisions if isinstance(d, AlarmDraft)], (kind, type_)


def test_every_event_type_is_either_paging_or_never_raising() -> None:
    # A type the contract adds later must be thought about: either a rule raises on it or it
    # is in NEVER_RAISE. This fails if a new type appears that is neither.
    paging = {r.type.value for r in load_rules(DEFAULT_RULES).events}
    assert {t.value for t in EventType} <= paging | NEVER_RAISE
    assert INERT <= NEVER_RAISE


@pytest.mark.parametrize("type_", ["restore", "test", "clear", "cancel", "heartbeat"])
def test_a_rules_file_cannot_make_an_end_or_a_test_page(tmp_path: Path, type_: str) -> None:
    if type_ not in {t.value for t in EventType}:
        pytest.skip(f"the contract has no {type_!r} yet")

    def change(data: dict[str, Any]) -> None:
        data["events"][0]["type"] = type_

    with pytest.raises(ConfigFileError) as caught:
        load_rules(rules_file(tmp_path, change))
    assert "events.0" in str(caught.value) and "never page" in str(caught.value)


# ---- clears ----------------------------------------------------------------------------------


def test_an_event_rule_clears_after_its_hold_unless_it_alarms_again(rules: Rules) -> None:
    water: dict[str, Any] = {"device": "w-1", "kind": "water", "gateway": "gw-1"}
    assert kinds(rules.on_event(event(**water, type_="alarm"), None, T0)) == ["raise water_leak 3"]
    assert rules.on_event(event(**water, type_="clear"), None, T0 + 1) == []
    assert rules.tick(T0 + 300) == []  # the hold (300 s) has not run out
    # alarming again within the hold: the same case, and the pending clear is off
    assert kinds(rules.on_event(event(**water, type_="alarm"), None, T0 + 100)) == [
        "raise water_leak 3"
    ]
    assert rules.tick(T0 + 1000) == []
    rules.on_event(event(**water, type_="clear"), None, T0 + 1000)
    [clear] = rules.tick(T0 + 1300)
    assert isinstance(clear, Clear) and clear.rule == "water_leak"
    assert rules.tick(T0 + 2000) == []


def test_a_life_safety_rule_reports_the_devices_clear_but_latches(rules: Rules) -> None:
    [draft] = rules.on_event(event("smoke-1", "smoke", "alarm", gateway="gw-1"), None, T0)
    assert isinstance(draft, AlarmDraft) and draft.life_safety and draft.level == 1
    [clear] = rules.on_event(event("smoke-1", "smoke", "clear", gateway="gw-1"), None, T0 + 5)
    assert isinstance(clear, Clear)  # the alarm book notes it and keeps the case open


# ---- thresholds: hysteresis, holds, latching -------------------------------------------------


def test_methane_hysteresis_and_clear_hold(rules: Rules) -> None:
    seq = [(0, 12.0), (5, 9.5), (10, 10.5), (15, 9.0), (20, 7.0), (50, 7.5), (75, 7.9), (85, 6)]
    out = []
    for at, pct in seq:
        out.append(kinds(rules.on_reading("gw-1", reading("gas", at, ch4_pct_lel=pct))))
    assert out == [
        ["raise methane_high 2"],
        [],  # 9.5: under the bound, over the clear bound (8): nothing changes
        ["raise methane_high 2"],  # a repeat on the open case
        [],
        [],  # 7.0: under 8, the clear must hold 60 s
        [],
        [],  # 75 s: 55 s under 8 so far
        ["clear methane_high"],  # 85 s: held 65 s
    ]


def test_methane_level_one_is_life_safety(rules: Rules) -> None:
    [low] = rules.on_reading("gw-1", reading("gas", 0, ch4_pct_lel=12))
    [high] = rules.on_reading("gw-1", reading("gas", 1, ch4_pct_lel=30))
    assert isinstance(low, AlarmDraft) and isinstance(high, AlarmDraft)
    assert (low.level, low.life_safety, high.level, high.life_safety) == (2, False, 1, True)


def test_battery_must_read_low_for_its_hold(rules: Rules) -> None:
    def at(t: float, pct: float) -> list[str]:
        return kinds(rules.on_reading("gw-1", reading("call", t, device="call-1", battery_pct=pct)))

    assert at(0, 15) == []
    assert at(300, 40) == []  # recovered: the hold starts again
    assert at(400, 18) == []
    assert at(999, 18) == []
    assert at(1000, 19) == ["raise battery_low_reading 4"]
    assert at(1100, 25) == []  # under the clear bound (30): stays
    assert at(1200, 31) == ["clear battery_low_reading"]


def test_a_rule_per_model_overrides_the_generic_one(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        special = dict(data["thresholds"][0])
        special.update(models=["gas_special"], levels=[{"at_or_above": 5, "level": 2}])
        special["clear_below"] = 4
        data["thresholds"].append(special)

    rules = Rules(load_rules(rules_file(tmp_path, change)))
    r = reading("gas", 0, ch4_pct_lel=6)
    assert rules.on_reading("gw-1", r, "gas_mcp3008") == []
    assert kinds(
        rules.on_reading("gw-1", r.model_copy(update={"device": "g2"}), "gas_special")
    ) == ["raise methane_high 2"]


# ---- rate of rise and counts -----------------------------------------------------------------


def test_rate_of_rise(rules: Rules) -> None:
    def at(t: float, temp: float) -> list[str]:
        return kinds(rules.on_reading("gw-1", reading("air", t, device="air-1", temp_c=temp)))

    assert at(0, 22) == []
    assert at(30, 26) == []
    assert at(55, 31) == ["raise heat_rising 2"]  # +9 °C within 60 s
    # the window (60 s) now starts at 10 s: +5.5 over its lowest (26) is under the rise (8)
    # but over the clear bound (half): inside the band, nothing changes
    assert at(70, 31.5) == []
    assert at(200, 31.6) == ["clear heat_rising"]  # alone in its window: no rise at all


def test_counts_in_a_window(rules: Rules) -> None:
    def fault(t: float) -> list[str]:
        ts = START + timedelta(seconds=t)
        return kinds(rules.on_event(event("smoke-1", "smoke", "fault", "gw-1", ts), None, T0 + t))

    assert fault(0) == ["raise device_fault 3"]
    assert fault(10) == ["raise device_fault 3"]
    assert fault(90000) == ["raise device_fault 3"]  # the first two are out of the 24 h
    assert fault(90010) == ["raise device_fault 3"]
    assert fault(90020) == ["raise device_fault 3", "raise faults_repeating 3"]


# ---- supervision and inhibition --------------------------------------------------------------


def core_with(now: float = T0, change: Any = None, tmp: Path | None = None) -> RulesCore:
    config = load_rules(rules_file(tmp, change)) if change and tmp else load_rules(DEFAULT_RULES)
    return RulesCore(config, devices=DEVICES, gateways=["gw-1", "gw-2"], now=now)


def test_an_offline_gateway_is_one_alarm_that_mutes_its_devices_silence() -> None:
    core = core_with()
    # gw-1 goes offline (its last will); 15 minutes pass
    result = core.status("gw-1", False, T0 + 10)
    assert kinds(result.decisions) == ["raise gateway_offline 2"]
    core.event(event("gw-2", "gateway", "heartbeat", gateway="gw-2"), T0 + 950)  # gw-2 talks
    later = core.tick(T0 + 1000)
    # gw-2's air monitor is silent and alarms; gw-1's gas and air monitors are muted
    assert kinds(later.decisions) == ["raise device_silent 3"]
    assert later.decisions[0].gateway == "gw-2"
    assert sorted(d.device for _, d in later.inhibited) == ["air-1", "gas-1"]
    assert {s for s, _ in later.inhibited} == {("gw-1", "gw-1", "gateway_offline")}
    # muted again on the next tick, but reported once
    again = core.tick(T0 + 1001)
    assert again.decisions == [] and again.inhibited == [] and again.muted == 2

    # back online: the gateway alarm clears, its devices get a fresh grace period
    back = core.status("gw-1", True, T0 + 1100)
    assert kinds(back.decisions) == ["clear gateway_offline"]
    core.event(event("gw-1", "gateway", "heartbeat", gateway="gw-1"), T0 + 1300)
    core.event(event("gw-2", "gateway", "heartbeat", gateway="gw-2"), T0 + 1300)
    assert core.tick(T0 + 1500).decisions == []
    core.event(event("gw-1", "gateway", "heartbeat", gateway="gw-1"), T0 + 1800)
    core.event(event("gw-2", "gateway", "heartbeat", gateway="gw-2"), T0 + 1800)
    silent = core.tick(T0 + 2001)
    assert sorted(d.device for d in silent.decisions) == ["air-1", "gas-1"]
    heard = core.readings("gw-1", [reading("gas", 2002, ch4_pct_lel=1.0)], T0 + 2002)
    assert kinds(heard.decisions) == ["clear device_silent"]


def test_a_gateway_that_stops_talking_is_offline_too() -> None:
    core = core_with()
    core.status("gw-1", True, T0)
    assert kinds(core.tick(T0 + 299).decisions) == []
    assert "raise gateway_offline 2" in kinds(core.tick(T0 + 301).decisions)
    heard = core.event(event("gw-1", "gateway", "heartbeat", gateway="gw-1"), T0 + 302)
    assert kinds(heard.decisions) == ["clear gateway_offline"]


def test_after_a_restart_open_alarms_can_still_clear() -> None:
    core = core_with()
    core.restore([("gw-1", "gw-1", "gateway_offline"), ("gw-1", "gas-1", "methane_high")])
    assert core.tick(T0 + 1).decisions == []  # still offline until its status says otherwise
    assert kinds(core.status("gw-1", True, T0).decisions) == ["clear gateway_offline"]
    out = core.readings("gw-1", [reading("gas", 0, ch4_pct_lel=1.0)], T0)
    out2 = core.readings("gw-1", [reading("gas", 61, ch4_pct_lel=1.0)], T0 + 61)
    assert kinds(out.decisions + out2.decisions) == ["clear methane_high"]


def test_a_worker_supervises_only_the_gateways_it_holds() -> None:
    core = core_with()
    core.scope_to(lambda gw: gw == "gw-1", [], T0)
    # a quarter of an hour of silence everywhere: only gw-1's devices and gw-1 itself count
    later = core.tick(T0 + 1000).decisions
    assert [(d.gateway, d.rule) for d in later] == [("gw-1", "gateway_offline")]
    # gw-2 is another worker's: this one raises nothing for it (unscoped, it would)
    unscoped = core_with().tick(T0 + 1000).decisions
    assert {d.gateway for d in unscoped} == {"gw-1", "gw-2"}


def test_gateways_handed_over_keep_their_alarms_open_for_the_next_worker() -> None:
    core = core_with()
    core.readings("gw-1", [reading("gas", 0, ch4_pct_lel=12)], T0)
    assert core.rules.firing(("gw-1", "gas-1", "methane_high"))
    # given up: forgotten, and nothing is cleared (the other worker owns the open alarm now)
    core.scope_to(lambda gw: gw == "gw-2", [], T0 + 1)
    assert not core.rules.firing(("gw-1", "gas-1", "methane_high"))
    assert {d.gateway for d in core.tick(T0 + 2000).decisions} == {"gw-2"}
    # taken back with its open alarm read from the database: a clear can close it
    core.scope_to(lambda gw: True, [("gw-1", "gas-1", "methane_high")], T0 + 3)
    out = core.readings("gw-1", [reading("gas", 10, ch4_pct_lel=1.0)], T0 + 10).decisions
    out += core.readings("gw-1", [reading("gas", 71, ch4_pct_lel=1.0)], T0 + 71).decisions
    assert kinds(out) == ["clear methane_high"]
    # and its devices start a fresh grace period: not silent at once
    assert not [d for d in core.tick(T0 + 72).decisions if d.gateway == "gw-1"]


# ---- reconfiguration -------------------------------------------------------------------------


def test_a_new_rules_file_keeps_the_state_of_unchanged_rules(tmp_path: Path) -> None:
    core = core_with()
    for hour in range(12):  # PM2.5 24 h mean builds up
        core.readings("gw-1", [reading("air", hour * 3600, device="air-1", pm25_ugm3=90)], T0)
    core.readings("gw-1", [reading("gas", 0, ch4_pct_lel=12)], T0)

    def change(data: dict[str, Any]) -> None:
        data["thresholds"][0]["levels"] = [{"at_or_above": 15, "level": 2}]  # methane changed
        data["thresholds"][0]["clear_below"] = 12

    core.reconfigure(load_rules(rules_file(tmp_path, change)))
    # PM2.5 unchanged: its window carried over (mean of 13 readings of 90 and one of 20)
    [pm] = core.readings(
        "gw-1", [reading("air", 12 * 3600, device="air-1", pm25_ugm3=20)], T0
    ).decisions
    assert isinstance(pm, AlarmDraft) and pm.value == pytest.approx((12 * 90 + 20) / 13, abs=0.01)
    # methane changed: still firing (its open alarm can clear under the new bound)
    assert core.rules.firing(("gw-1", "gas-1", "methane_high"))
    cleared = core.readings("gw-1", [reading("gas", 1, ch4_pct_lel=11)], T0).decisions
    cleared += core.readings("gw-1", [reading("gas", 62, ch4_pct_lel=11)], T0).decisions
    assert kinds(cleared) == ["clear methane_high"]


# ---- the file itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (lambda d: d["thresholds"][0].update(clear_below=30), "thresholds.0", "clear while"),
        (lambda d: d["policies"].pop(), "policies", "level(s) [3, 4]"),
        (lambda d: d["events"][0].update(rule="device_silent"), "events", "cloud's own"),
        (lambda d: d["counts"][0].update(rule="smoke_alarm"), "counts", "already used"),
        (lambda d: d["inhibit"][0].update(source="nope"), "inhibit.0", "unknown rule"),
        (lambda d: d["policies"][0].update(via="sms"), "policies.0", "via"),
        (lambda d: d["rates"][0].update(field="temp_f"), "rates.0.field", "temp_f"),
    ],
)
def test_a_bad_rules_file_is_refused_naming_file_and_field(
    tmp_path: Path, change: Any, where: str, says: str
) -> None:
    path = rules_file(tmp_path, change)
    with pytest.raises(ConfigFileError) as caught:
        load_rules(path)
    text = str(caught.value)
    assert str(path) in text and where in text and says in text, text


def test_the_default_file_covers_the_standards() -> None:
    data = default_rules_dict()
    limits = {t["field"]: (t.get("window_s", 0), t["levels"][0]) for t in data["thresholds"]}
    assert limits["ch4_pct_lel"][1] == {"at_or_above": 10, "level": 2}
    assert limits["pm25_ugm3"] == (86400, {"above": 50, "level": 4})
    assert limits["pm10_ugm3"] == (86400, {"above": 100, "level": 4})
    assert limits["co2_ppm"] == (3600, {"above": 1000, "level": 4})
    assert limits["hcho_mgm3"] == (3600, {"above": 0.08, "level": 4})
    assert limits["tvoc_mgm3"] == (28800, {"above": 0.6, "level": 4})
    config = load_rules(DEFAULT_RULES)
    assert config.policy_for("call_for_help", 1).budget_s == 60
    fire = config.policy_for("smoke_alarm", 1)
    assert fire.deliver_within_s == 15 and fire.notify
