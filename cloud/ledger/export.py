"""The ledger's exports: the cases as CSV (UTF-8 with a byte-order mark, for Excel) and as an
Excel workbook (a sheet of cases, a summary sheet), in Chinese or English, times in Beijing
time. Text a spreadsheet would run as a formula is kept as text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypedDict

from cloud.alarms.model import Outcome
from cloud.ledger.cases import LedgerRow
from cloud.ledger.filters import BEIJING, LedgerFilter
from cloud.times import from_epoch

#: An export holds at most this many cases; a wider filter is refused with the count. Excel
#: is the smaller: openpyxl writes ~1,300 rows/s here without lxml (CSV ~10,000 rows/s).
EXPORT_MAX_ROWS = {"csv": 50_000, "xlsx": 10_000}


class _Words(TypedDict):
    levels: dict[int, str]
    kinds: dict[str, str]
    outcomes: dict[str, str]
    causes: dict[str, str]
    states: dict[str, str]
    modes: dict[str, str]
    yes: str
    no: str
    system: str
    sheet: str
    summary: str


_WORDS: dict[str, _Words] = {
    "zh": {
        "levels": {1: "Ⅰ级", 2: "Ⅱ级", 3: "Ⅲ级", 4: "Ⅳ级"},
        "kinds": {
            "call": "一键呼叫",
            "smoke": "烟感",
            "gas": "燃气",
            "air": "空气",
            "water": "水浸",
            "power": "电路",
            "gateway": "网关",
        },
        "outcomes": {
            "handled": "已处置",
            "false_alarm": "误报",
            "test": "测试",
            "cleared": "自动解除",
        },
        "causes": {
            "mistouch": "误触",
            "device_fault": "设备故障",
            "cooking": "烹饪油烟",
            "unannounced_test": "测试未报备",
            "other": "其他",
        },
        "states": {"active": "待受理", "accepted": "已受理", "resolved": "已办结"},
        "modes": {
            "live": "值班",
            "walk_test": "巡检测试",
            "maintenance": "维护",
            "drill": "应急演练",
        },
        "yes": "是",
        "no": "否",
        "system": "系统",
        "sheet": "台账",
        "summary": "汇总",
    },
    "en": {
        "levels": {1: "I", 2: "II", 3: "III", 4: "IV"},
        "kinds": {},
        "outcomes": {
            "handled": "handled",
            "false_alarm": "false alarm",
            "test": "test",
            "cleared": "cleared",
        },
        "causes": {
            "mistouch": "mistouch",
            "device_fault": "device fault",
            "cooking": "cooking fumes",
            "unannounced_test": "unannounced test",
            "other": "other",
        },
        "states": {"active": "not accepted", "accepted": "accepted", "resolved": "resolved"},
        "modes": {
            "live": "live",
            "walk_test": "walk test",
            "maintenance": "maintenance",
            "drill": "drill",
        },
        "yes": "yes",
        "no": "no",
        "system": "system",
        "sheet": "Ledger",
        "summary": "Summary",
    },
}

#: (field, Chinese header, English header, Excel column width)
COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("id", "案件编号", "Case no.", 9),
    ("level", "级别", "Level", 7),
    ("kind", "类型", "Kind", 9),
    ("title", "告警", "Alarm", 22),
    ("community", "社区", "Community", 12),
    ("grid", "网格", "Grid", 10),
    ("building", "楼栋", "Building", 14),
    ("home", "户", "Home", 11),
    ("device", "设备", "Device", 12),
    ("model", "设备型号", "Device model", 18),
    ("received_at", "接收时间（北京时间）", "Received (Beijing time)", 20),
    ("accepted_at", "受理时间", "Accepted", 20),
    ("accepted_by", "受理人", "Accepted by", 10),
    ("time_to_accept_s", "受理用时（秒）", "Time to accept (s)", 12),
    ("budget_s", "受理时限（秒）", "Acceptance budget (s)", 12),
    ("within_budget", "时限内受理", "Accepted within budget", 10),
    ("dispatched_at", "派单时间", "Dispatched", 20),
    ("dispatched_to", "派给", "Dispatched to", 16),
    ("dispatch_notes", "派单说明", "Dispatch notes", 28),
    ("feedback", "情况反馈", "Feedback", 28),
    ("resolved_at", "办结时间", "Resolved", 20),
    ("resolved_by", "办结人", "Resolved by", 10),
    ("outcome", "处置结果", "Outcome", 10),
    ("cause", "误报原因", "False-alarm cause", 12),
    ("note", "处置说明", "Note", 28),
    ("time_to_resolve_s", "办结用时（秒）", "Time to resolve (s)", 12),
    ("escalations", "升级次数", "Escalations", 9),
    ("verified_at", "督办核实时间", "Verified", 20),
    ("verified_by", "核实人", "Verified by", 10),
    ("verify_note", "核实说明", "Verification note", 24),
    ("state", "状态", "State", 9),
    ("mode", "记录类型", "Record", 9),
)

_TIME_FIELDS = {"received_at", "accepted_at", "dispatched_at", "resolved_at", "verified_at"}


def headers(lang: str) -> list[str]:
    return [zh if lang == "zh" else en for _, zh, en, _ in COLUMNS]


def local(moment: datetime | None) -> datetime | None:
    """An aware time → naive Beijing time (what Excel and a spreadsheet reader show)."""
    return None if moment is None else moment.astimezone(BEIJING).replace(tzinfo=None)


def _cells(row: LedgerRow, lang: str) -> list[Any]:
    """One case as export values: times as naive Beijing datetimes, numbers as numbers."""
    words = _WORDS[lang]
    out: list[Any] = []
    for name, *_ in COLUMNS:
        value: Any
        if name in _TIME_FIELDS:
            value = local(getattr(row, name))
        elif name == "level":
            value = words["levels"][row.level]
        elif name == "kind":
            value = words["kinds"].get(row.kind, row.kind)
        elif name == "title":
            value = row.title_zh if lang == "zh" else row.title_en
        elif name == "within_budget":
            value = (
                None if row.within_budget is None else words["yes" if row.within_budget else "no"]
            )
        elif name == "outcome":
            value = words["outcomes"].get(row.outcome.value) if row.outcome else None
        elif name == "cause":
            value = words["causes"].get(row.cause.value) if row.cause else None
        elif name == "state":
            value = words["states"][row.state.value]
        elif name == "mode":
            value = words["modes"][row.mode.value]
        elif name in ("accepted_by", "resolved_by") and getattr(row, name) == "system":
            value = words["system"]
        else:
            value = getattr(row, name)
        out.append(value)
    return out


#: A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(…), +cmd…,
#: -2+3, @SUM(…); a tab or carriage return ahead of them), full-width forms included.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


#: The control characters a workbook cannot hold (as openpyxl's ILLEGAL_CHARACTERS_RE, which
#: raises on them; openpyxl itself is imported only when a workbook is written).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def clean_text(text: str) -> str:
    """Text as a workbook can hold it: control characters (other than tab, newline and
    carriage return) removed; openpyxl refuses a cell with one."""
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_START)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        value = clean_text(value)
        # an apostrophe makes a spreadsheet show the text as typed instead of running it
        return "'" + value if is_formula_like(value) else value
    return value


def to_csv(cases: Iterable[LedgerRow], lang: str) -> bytes:
    """UTF-8 with a byte-order mark (so Excel reads the Chinese right), CRLF line ends. Text
    that a spreadsheet would run as a formula starts with an apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers(lang))
    for case in cases:
        writer.writerow([_csv_value(v) for v in _cells(case, lang)])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(
    cases: Sequence[LedgerRow],
    lang: str,
    *,
    filt: LedgerFilter,
    actor: str,
    now: float,
) -> bytes:
    """An Excel workbook: the cases (styled header, widths, real datetimes in Beijing time,
    frozen header, auto-filter) and a summary sheet (filter, who exported, counts)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    words = _WORDS[lang]
    book = Workbook(write_only=True)
    sheet = book.create_sheet(str(words["sheet"]))
    bold = Font(bold=True, color="FFFFFF")
    fill = PatternFill("solid", fgColor="20232A")
    wrap = Alignment(vertical="center", wrap_text=True)
    for i, (*_, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(cases) + 1}"

    def header_cell(text: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font, cell.fill, cell.alignment = bold, fill, wrap
        return cell

    sheet.append([header_cell(h) for h in headers(lang)])
    for case in cases:
        out: list[Any] = []
        for value in _cells(case, lang):
            if isinstance(value, datetime):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                out.append(cell)
            elif isinstance(value, str):
                text = clean_text(value)
                if is_formula_like(text):  # text as typed, never a formula
                    cell = WriteOnlyCell(sheet, value=text)
                    cell.data_type = "s"
                    out.append(cell)
                else:
                    out.append(text)
            else:
                out.append(value)
        sheet.append(out)

    summary = book.create_sheet(str(words["summary"]))
    summary.column_dimensions["A"].width = 22
    summary.column_dimensions["B"].width = 40
    zh = lang == "zh"
    exported = WriteOnlyCell(summary, value=local(from_epoch(now)))
    exported.number_format = "yyyy-mm-dd hh:mm:ss"
    summary.append([header_cell("台账导出" if zh else "Ledger export"), header_cell("")])
    summary.append(["导出时间（北京时间）" if zh else "Exported (Beijing time)", exported])
    summary.append(["导出人" if zh else "Exported by", actor])
    summary.append(["记录数" if zh else "Cases", len(cases)])
    described = filt.describe()
    summary.append(["筛选条件" if zh else "Filter", "" if described else ("全部" if zh else "all")])
    for key, value in described.items():
        summary.append([key, ", ".join(map(str, value)) if isinstance(value, list) else value])
    summary.append([])
    summary.append(
        [
            header_cell("级别" if zh else "Level"),
            header_cell("数量" if zh else "Cases"),
            header_cell("误报" if zh else "False alarms"),
        ]
    )
    for level, name in words["levels"].items():
        of_level = [c for c in cases if c.level == level]
        false_alarms = sum(c.outcome is Outcome.FALSE_ALARM for c in of_level)
        summary.append([name, len(of_level), false_alarms])
    out_buffer = io.BytesIO()
    book.save(out_buffer)
    return out_buffer.getvalue()
