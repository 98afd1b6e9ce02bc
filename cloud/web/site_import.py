"""Homes from the street office's spreadsheet (installers and admins), and the site file
re-imported over the stored registry (admins). The CSV goes as the request body
(`Content-Type: text/csv`), not a multipart form: python-multipart is not installed."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from cloud.site.homes_csv import CsvRejected, HomePlanned, RowError, plan_import
from cloud.site.tree import Change, SiteEditError
from cloud.web.deps import AdminUser, EditorUser, SiteDep
from cloud.web.site import Refused, SiteChanged, site_router
from contract.site import Site

router = site_router()

MAX_CSV_BYTES = 2 * 1024 * 1024


class ImportResult(BaseModel):
    dry_run: bool
    version: int | None = Field(description="The new version (None on a dry run)")
    buildings: list[str] = Field(description="Buildings the file creates")
    homes: list[HomePlanned]


class ImportRejected(BaseModel):
    detail: list[RowError] | list[dict[str, Any]] = Field(
        description="Every problem with its row and column (or FastAPI's list of invalid fields)"
    )


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CSV_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "CSV over 2 MB: import in parts")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "CSV over 2 MB: import in parts")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/import",
    response_model=ImportResult,
    responses={
        413: {"model": Refused, "description": "the file is over 2 MB"},
        422: {"model": ImportRejected, "description": "every problem, by row; nothing applied"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The spreadsheet as CSV (UTF-8 with or without BOM, or GBK)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_homes(
    request: Request,
    site: SiteDep,
    user: EditorUser,
    dry_run: bool = Query(False, description="Check and show what would change; save nothing"),
) -> ImportResult:
    """Homes from the street office's spreadsheet: all rows or none (422 lists every
    problem with its row and column)."""
    raw = await _body(request)
    holder: list[HomePlanned] = []
    buildings: list[str] = []

    def operation(current: Site) -> Change:
        change, plan = plan_import(current, raw)
        holder.extend(plan.homes)
        buildings.extend(plan.buildings)
        return change

    try:
        if dry_run:
            await site.preview(operation)
            version = None
        else:
            _, saved = await site.apply(user.name, operation)
            version = saved.version
    except CsvRejected as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, [e.model_dump() for e in exc.errors]
        ) from None
    except SiteEditError as exc:  # as a row-less problem, in the shape of the CSV's
        error = RowError(row=0, zh=exc.zh, en=exc.en)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error.model_dump()]) from None
    return ImportResult(dry_run=dry_run, version=version, buildings=buildings, homes=holder)


@router.post("/reimport", response_model=SiteChanged)
async def reimport(site: SiteDep, user: AdminUser) -> SiteChanged:
    """Read the site file (SC_CLOUD_SITE_FILE) again and make it the registry, as a new
    version (the edits made since stay in the earlier versions)."""
    _, version = await site.reimport(user.name)
    return SiteChanged.of(version)
