"""The ledger (台账) as the duty room asks for it: a page of cases, the filter form's choices,
the report, and the exports (CSV, Excel) — each export audited, since the ledger holds
residents' addresses. The queries, sums and file formats are the ledger package's
(`cloud.ledger`: filters, queries, cases, reports, export); this puts them together with the
rules in force, the clock and the limits (`TooLarge` past them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from cloud import ledger
from cloud.access.audit import Audit
from cloud.alarms.model import LEVEL_NAMES, AlarmState, Outcome
from cloud.db.database import Database
from cloud.errors import TooLarge
from cloud.ledger import ExportQuery, LedgerFilter, LedgerPage, LedgerQuery, Report
from cloud.rules.config import RulesFile
from cloud.site.registry import Registry
from cloud.times import from_epoch
from contract.models import Kind

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Format = Literal["csv", "xlsx"]


class Choice(BaseModel):
    value: str
    label: str


class LedgerOptions(BaseModel):
    """What the filter form offers."""

    communities: list[Choice]
    kinds: list[str]
    levels: list[Choice]
    outcomes: list[str]
    states: list[str]
    export_max_rows: dict[str, int] = Field(description="Per format: csv, xlsx")


@dataclass(frozen=True)
class Export:
    """An export's file: its bytes, media type and names (`name_zh` for a Chinese one)."""

    body: bytes
    media_type: str
    name: str
    name_zh: str | None


class Ledger:
    def __init__(
        self,
        db: Database,
        audit: Audit,
        registry: Registry,
        rules: Callable[[], RulesFile],
    ) -> None:
        self.db = db
        self.audit = audit
        self.registry = registry
        self.rules = rules

    async def page(self, query: LedgerQuery) -> LedgerPage:
        """Cases newest first (by when the cloud received them), one page, with the total."""
        return await ledger.page(self.db, query, self.rules(), self.db.clock())

    def options(self) -> LedgerOptions:
        return LedgerOptions(
            communities=[Choice(value=c.id, label=c.name) for c in self.registry.site.communities],
            kinds=[k.value for k in Kind],
            levels=[Choice(value=str(n), label=name) for n, name in LEVEL_NAMES.items()],
            outcomes=[o.value for o in Outcome],
            states=[s.value for s in AlarmState],
            export_max_rows=dict(ledger.EXPORT_MAX_ROWS),
        )

    async def report(self, filt: LedgerFilter) -> Report:
        """Times to accept and to resolve per level, acceptance within budget, false-alarm
        rates; `TooLarge` when more cases match than a report covers."""
        now = self.db.clock()
        try:
            cases = await ledger.report_cases(self.db, filt, self.rules(), now)
        except ledger.TooMany as too_many:
            raise TooLarge(
                f"{too_many.total} cases match; a report covers at most {too_many.limit}:"
                " narrow the date range or the filter"
            ) from None
        return await asyncio.to_thread(ledger.report, cases, filt, now)

    async def export(self, query: ExportQuery, fmt: Format, actor: str) -> Export:
        """The filtered cases as a file (audited `ledger_export`: format, filter, rows);
        `TooLarge` when more match than the format holds."""
        total = await ledger.count(self.db, query)
        limit = ledger.EXPORT_MAX_ROWS[fmt]
        if total > limit:
            raise TooLarge(
                f"{total} cases match; an export as {fmt} holds at most {limit}:"
                " narrow the date range or the filter"
            )
        now = self.db.clock()
        cases = await ledger.rows(self.db, query, self.rules(), now)
        filt = LedgerFilter.model_validate(query.model_dump(exclude={"lang"}))
        if fmt == "csv":
            body = await asyncio.to_thread(ledger.to_csv, cases, query.lang)
            media = CSV
        else:
            body = await asyncio.to_thread(
                lambda: ledger.to_xlsx(cases, query.lang, filt=filt, actor=actor, now=now)
            )
            media = XLSX
        detail = {"format": fmt, "lang": query.lang, "filter": filt.describe(), "rows": len(cases)}
        await self.audit.record(actor, "ledger_export", json.dumps(detail, ensure_ascii=False))
        stamp = from_epoch(now).astimezone(ledger.BEIJING)
        stamp_text = stamp.strftime("%Y%m%d-%H%M%S")
        return Export(
            body=body,
            media_type=media,
            name=f"ledger-{stamp_text}.{fmt}",
            name_zh=f"台账-{stamp_text}.{fmt}" if query.lang == "zh" else None,
        )
