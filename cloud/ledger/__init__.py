"""The ledger (台账): every case the duty room had, filtered and paged (`filters`, `queries`),
one row per case with its times and budget (`cases`), exported as CSV and as an Excel workbook
(`export`), and summed up as a report (`reports`).

Reads only, from the alarm book's tables (`alarms`, `alarm_log`). The names below are the
ledger's public face, what the web app calls.
"""

from cloud.ledger.cases import LedgerPage, LedgerRow
from cloud.ledger.export import EXPORT_MAX_ROWS, to_csv, to_xlsx
from cloud.ledger.filters import BEIJING, ExportQuery, LedgerFilter, LedgerQuery
from cloud.ledger.queries import REPORT_MAX_ROWS, TooMany, count, page, report_cases, rows
from cloud.ledger.reports import Report, report

__all__ = [
    "BEIJING",
    "EXPORT_MAX_ROWS",
    "REPORT_MAX_ROWS",
    "ExportQuery",
    "LedgerFilter",
    "LedgerPage",
    "LedgerQuery",
    "LedgerRow",
    "Report",
    "TooMany",
    "count",
    "page",
    "report",
    "report_cases",
    "rows",
    "to_csv",
    "to_xlsx",
]
