"""The rules in force: what is loaded, reloading it (admins), and the audit of changes."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.access.audit import AuditEntry
from cloud.rules.reload import Summary
from cloud.web.deps import AdminUser, AuditDep, ReaderUser, ReloaderDep

router = APIRouter(prefix="/api", tags=["rules"])


class RulesInForce(BaseModel):
    version: str
    digest: str
    path: str
    loaded_at: datetime
    rules: int
    policies: int
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []

    @classmethod
    def of(cls, summary: Summary) -> RulesInForce:
        return cls(
            version=summary.version,
            digest=summary.digest,
            path=summary.path,
            loaded_at=summary.loaded_at,
            rules=summary.rules,
            policies=summary.policies,
            added=list(summary.added),
            removed=list(summary.removed),
            changed=list(summary.changed),
        )


@router.get("/rules", response_model=RulesInForce)
async def rules_in_force(reloader: ReloaderDep, user: ReaderUser) -> RulesInForce:
    return RulesInForce.of(reloader.summary())


@router.post("/rules/reload", response_model=RulesInForce)
async def reload_rules(reloader: ReloaderDep, user: AdminUser) -> RulesInForce:
    """Re-read the rules file: validated first, applied in one step, audited. A bad file is
    refused (422, with the file and field) and the rules in force stay."""
    return RulesInForce.of(await reloader.reload(user.name))


@router.get("/audit", response_model=list[AuditEntry])
async def audit(
    audit: AuditDep,
    user: ReaderUser,
    limit: int = Query(100, ge=1, le=1000),
    action: str | None = None,
) -> list[AuditEntry]:
    return await audit.recent(limit, action)
