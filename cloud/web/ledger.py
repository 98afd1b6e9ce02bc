"""The ledger (台账) and its report for the duty room: cases filtered and paged, exported as CSV
and Excel (each export audited: the ledger holds residents' addresses), and the report of
times and rates. The queries and sums are in `cloud.ledger.cases`; this router only checks who
asks and what they ask for."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cloud import ledger
from cloud.access.users import User
from cloud.alarms.model import LEVEL_NAMES, AlarmState, Outcome
from cloud.ledger import ExportQuery, LedgerFilter, LedgerPage, LedgerQuery, Report
from cloud.parts import Cloud
from cloud.web.deps import CloudDep, DutyUser
from contract.models import Kind

router = APIRouter(prefix="/api/ledger", tags=["ledger"])

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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


@router.get("", response_model=LedgerPage)
async def cases(
    query: Annotated[LedgerQuery, Query()], cloud: CloudDep, user: DutyUser
) -> LedgerPage:
    """Cases newest first (by when the cloud received them), one page at a time, with the
    total that matched."""
    return await ledger.page(cloud.db, query, cloud.core.config, cloud.db.clock())


@router.get("/options", response_model=LedgerOptions)
async def options(cloud: CloudDep, user: DutyUser) -> LedgerOptions:
    return LedgerOptions(
        communities=[Choice(value=c.id, label=c.name) for c in cloud.registry.site.communities],
        kinds=[k.value for k in Kind],
        levels=[Choice(value=str(n), label=name) for n, name in LEVEL_NAMES.items()],
        outcomes=[o.value for o in Outcome],
        states=[s.value for s in AlarmState],
        export_max_rows=dict(ledger.EXPORT_MAX_ROWS),
    )


@router.get(
    "/report",
    response_model=Report,
    responses={413: {"description": "More cases match than a report covers"}},
)
async def report(
    query: Annotated[LedgerFilter, Query()], cloud: CloudDep, user: DutyUser
) -> Report:
    """Per level: time to accept and to resolve (p50/p90/p99, nearest rank), acceptance
    within the policy's budget; false-alarm rate per device model and per building."""
    now = cloud.db.clock()
    try:
        cases = await ledger.report_cases(cloud.db, query, cloud.core.config, now)
    except ledger.TooMany as too_many:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{too_many.total} cases match; a report covers at most {too_many.limit}:"
            " narrow the date range or the filter",
        ) from None
    return await asyncio.to_thread(ledger.report, cases, query, now)


async def _export(cloud: Cloud, user: User, query: ExportQuery, fmt: str) -> Response:
    total = await ledger.count(cloud.db, query)
    limit = ledger.EXPORT_MAX_ROWS[fmt]
    if total > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{total} cases match; an export as {fmt} holds at most {limit}:"
            " narrow the date range or the filter",
        )
    now = cloud.db.clock()
    cases = await ledger.rows(cloud.db, query, cloud.core.config, now)
    filt = LedgerFilter.model_validate(query.model_dump(exclude={"lang"}))
    if fmt == "csv":
        body = await asyncio.to_thread(ledger.to_csv, cases, query.lang)
        media = CSV
    else:
        body = await asyncio.to_thread(
            lambda: ledger.to_xlsx(cases, query.lang, filt=filt, actor=user.name, now=now)
        )
        media = XLSX
    detail = {"format": fmt, "lang": query.lang, "filter": filt.describe(), "rows": len(cases)}
    await cloud.audit.record(user.name, "ledger_export", json.dumps(detail, ensure_ascii=False))
    stamp = datetime.fromtimestamp(now, UTC).astimezone(ledger.BEIJING).strftime("%Y%m%d-%H%M%S")
    ascii_name = f"ledger-{stamp}.{fmt}"
    disposition = f'attachment; filename="{ascii_name}"'
    if query.lang == "zh":
        disposition += f"; filename*=UTF-8''{quote(f'台账-{stamp}.{fmt}')}"
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {CSV: {}}, "description": "The cases as CSV (UTF-8 with BOM)"}},
)
async def export_csv(
    query: Annotated[ExportQuery, Query()], cloud: CloudDep, user: DutyUser
) -> Response:
    """The filtered cases as CSV, newest first: UTF-8 with a byte-order mark so Excel shows
    the Chinese; times in Beijing time. Audited."""
    return await _export(cloud, user, query, "csv")


@router.get(
    "/export.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "The cases as an Excel workbook"}},
)
async def export_xlsx(
    query: Annotated[ExportQuery, Query()], cloud: CloudDep, user: DutyUser
) -> Response:
    """The filtered cases as an Excel workbook (a sheet of cases with real datetimes in
    Beijing time, and a summary sheet). Audited."""
    return await _export(cloud, user, query, "xlsx")
