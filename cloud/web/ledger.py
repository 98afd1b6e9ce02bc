"""The ledger (台账) and its report for the duty room: cases filtered and paged, exported as CSV
and Excel (each export audited: the ledger holds residents' addresses), and the report of
times and rates. The queries, sums and files are the ledger's (`cloud.ledger.service`); this
router only checks who asks and what they ask for."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cloud.ledger import ExportQuery, LedgerFilter, LedgerPage, LedgerQuery, Report
from cloud.ledger.service import CSV, XLSX, Export, LedgerOptions
from cloud.web.deps import DutyUser, LedgerDep

router = APIRouter(prefix="/api/ledger", tags=["ledger"])


@router.get("", response_model=LedgerPage)
async def cases(
    query: Annotated[LedgerQuery, Query()], ledger: LedgerDep, user: DutyUser
) -> LedgerPage:
    """Cases newest first (by when the cloud received them), one page at a time, with the
    total that matched."""
    return await ledger.page(query)


@router.get("/options", response_model=LedgerOptions)
async def options(ledger: LedgerDep, user: DutyUser) -> LedgerOptions:
    return ledger.options()


@router.get(
    "/report",
    response_model=Report,
    responses={413: {"description": "More cases match than a report covers"}},
)
async def report(
    query: Annotated[LedgerFilter, Query()], ledger: LedgerDep, user: DutyUser
) -> Report:
    """Per level: time to accept and to resolve (p50/p90/p99, nearest rank), acceptance
    within the policy's budget; false-alarm rate per device model and per building."""
    return await ledger.report(query)


def _file(export: Export) -> Response:
    disposition = f'attachment; filename="{export.name}"'
    if export.name_zh is not None:
        disposition += f"; filename*=UTF-8''{quote(export.name_zh)}"
    return Response(
        export.body, media_type=export.media_type, headers={"Content-Disposition": disposition}
    )


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {CSV: {}}, "description": "The cases as CSV (UTF-8 with BOM)"}},
)
async def export_csv(
    query: Annotated[ExportQuery, Query()], ledger: LedgerDep, user: DutyUser
) -> Response:
    """The filtered cases as CSV, newest first: UTF-8 with a byte-order mark so Excel shows
    the Chinese; times in Beijing time. Audited."""
    return _file(await ledger.export(query, "csv", user.name))


@router.get(
    "/export.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "The cases as an Excel workbook"}},
)
async def export_xlsx(
    query: Annotated[ExportQuery, Query()], ledger: LedgerDep, user: DutyUser
) -> Response:
    """The filtered cases as an Excel workbook (a sheet of cases with real datetimes in
    Beijing time, and a summary sheet). Audited."""
    return _file(await ledger.export(query, "xlsx", user.name))
