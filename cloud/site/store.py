"""The site registry's system of record: every version of the site document, in the cloud
database (`site_versions`), the newest in force.

On the first start (no version stored) the site file (`SC_CLOUD_SITE_FILE`) is read and saved
as version 1. From then on the database wins: later starts load the newest version, edits made
while the cloud runs are new versions, and a site file changed on disk is NOT read again by
itself (that would silently undo the installers' edits); the cloud logs that it differs, the
site API says so (`file_differs`), and an admin re-imports it on purpose
(`POST /api/site/reimport`), which saves it as a new version like any other edit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cloud.access.audit import Audit
from cloud.db.database import Conn, Database, Row
from cloud.errors import Conflict
from cloud.times import from_epoch
from contract.site import ConfigFileError, Site, load_site

log = logging.getLogger(__name__)

SYSTEM = "system"


class SiteVersion(BaseModel):
    """One saved version of the site (without the document itself)."""

    version: int
    saved_at: datetime
    saved_by: str
    reason: str
    source_file: str | None = None


class Replacement(BaseModel):
    """A failed device swapped for a new unit: same id, home binding and history."""

    gateway: str
    device: str
    at: datetime
    actor: str
    old_serial: str | None
    new_serial: str | None
    note: str
    version: int


def document_of(site: Site) -> str:
    """The stored form of a site: JSON, readable (ensure_ascii off), defaults left out."""
    return json.dumps(
        site.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False, indent=1
    )


def site_of(document: str) -> Site:
    return Site.model_validate_json(document)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(row: Row) -> SiteVersion:
    return SiteVersion(
        version=row["version"],
        saved_at=from_epoch(row["saved_at"]),
        saved_by=row["saved_by"],
        reason=row["reason"],
        source_file=row["source_file"],
    )


def _insert(
    conn: Conn,
    now: float,
    site: Site,
    document: str,
    actor: str,
    reason: str,
    source_file: str | None = None,
    source_sha256: str | None = None,
) -> SiteVersion:
    """The next version, within the caller's unit of work."""
    row = conn.execute("SELECT MAX(version) FROM site_versions").fetchone()
    number = (row[0] or 0) + 1 if row else 1
    conn.execute(
        "INSERT INTO site_versions (version, saved_at, saved_by, reason, source_file,"
        " source_sha256, document) VALUES (?,?,?,?,?,?,?)",
        (number, now, actor, reason[:1000], source_file, source_sha256, document),
    )
    return SiteVersion(
        version=number,
        saved_at=from_epoch(now),
        saved_by=actor,
        reason=reason[:1000],
        source_file=source_file,
    )


async def _last_import_digest(db: Database) -> str | None:
    row = await db.fetch_one(
        "SELECT source_sha256 FROM site_versions WHERE source_sha256 IS NOT NULL"
        " ORDER BY version DESC LIMIT 1"
    )
    return row["source_sha256"] if row else None


async def _differs(last: str | None, site_file: Path) -> bool:
    """Whether the file's digest is not `last`, the digest of the last import."""
    try:
        digest = await asyncio.to_thread(file_digest, site_file)
    except OSError:
        return False  # no file: nothing to re-import
    return last != digest


async def _newest(db: Database) -> tuple[Site, SiteVersion] | None:
    """The newest stored version and its site (None: none stored yet)."""
    row = await db.fetch_one("SELECT * FROM site_versions ORDER BY version DESC LIMIT 1")
    if row is None:
        return None
    try:
        site = await asyncio.to_thread(site_of, row["document"])
    except ValidationError as exc:  # only if a newer contract became stricter
        raise ConfigFileError(
            f"site version {row['version']} in the database is no longer valid: {exc}"
        ) from exc
    return site, _version(row)


async def load_or_seed(db: Database, site_file: Path) -> tuple[Site, SiteVersion]:
    """The site in force: the newest stored version, or (first start) the site file saved as
    version 1. Called once at start-up."""
    newest = await _newest(db)
    if newest is not None:
        site, version = newest
        if await _differs(await _last_import_digest(db), site_file):
            log.warning(
                "site file %s differs from the last one imported; the registry in the database"
                " (version %d) stays in force. An admin re-imports the file with"
                " POST /api/site/reimport.",
                site_file,
                version.version,
            )
        return site, version
    site = await asyncio.to_thread(load_site, site_file)
    digest = await asyncio.to_thread(file_digest, site_file)
    document = await asyncio.to_thread(document_of, site)
    now = db.clock()

    def seed(conn: Conn) -> SiteVersion:
        version = _insert(
            conn, now, site, document, SYSTEM, f"seeded from {site_file}", str(site_file), digest
        )
        conn.execute(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
            (now, SYSTEM, "site_seeded", f"version {version.version}: {site_file}"),
        )
        return version

    version = await db.write(seed)
    log.info("site registry seeded from %s as version %d", site_file, version.version)
    return site, version


class SiteStore:
    def __init__(self, db: Database, audit: Audit) -> None:
        self.db = db
        self.audit = audit

    async def newest(self) -> tuple[Site, SiteVersion] | None:
        """The newest stored version and its site (e.g. one another process saved)."""
        return await _newest(self.db)

    async def file_differs(self, site_file: Path) -> bool:
        """Whether the site file on disk is not the one last imported (seed or re-import)."""
        return await _differs(await _last_import_digest(self.db), site_file)

    async def save(
        self,
        site: Site,
        actor: str,
        action: str,
        reason: str,
        *,
        source: tuple[str, str] | None = None,
        replacement: tuple[str, str, str | None, str | None, str] | None = None,
        after: int | None = None,
    ) -> SiteVersion:
        """Save `site` as a new version with its audit entry (and a device replacement's
        record), in one unit of work. `after`: the version the change was made from; if a
        newer one was saved meanwhile (by another process on the same database), nothing is
        saved and `Conflict` says so — the change would undo that one."""
        document = await asyncio.to_thread(document_of, site)
        now = self.db.clock()
        source_file, digest = source if source else (None, None)

        def save(conn: Conn) -> SiteVersion:
            if after is not None:
                newest = conn.execute("SELECT MAX(version) FROM site_versions").fetchone()[0]
                if newest is not None and newest != after:
                    raise Conflict.said(
                        f"站点已被另一处修改（版本 {newest}），请刷新后重做",
                        f"the site was changed meanwhile (version {newest}): reload and redo",
                    )
            version = _insert(conn, now, site, document, actor, reason, source_file, digest)
            if replacement is not None:
                gateway, device, old, new, note = replacement
                conn.execute(
                    "INSERT INTO device_replacements (gateway, device, at, actor,"
                    " old_serial, new_serial, note, version) VALUES (?,?,?,?,?,?,?,?)",
                    (gateway, device, now, actor, old, new, note, version.version),
                )
            self.audit.add(conn, actor, action, f"version {version.version}: {reason}", now)
            return version

        return await self.db.write(save)

    async def versions(self, limit: int = 100) -> list[SiteVersion]:
        rows = await self.db.fetch_all(
            "SELECT version, saved_at, saved_by, reason, source_file FROM site_versions"
            " ORDER BY version DESC LIMIT ?",
            (limit,),
        )
        return [_version(r) for r in rows]

    async def replacements(self, gateway: str, device: str) -> list[Replacement]:
        rows = await self.db.fetch_all(
            "SELECT * FROM device_replacements WHERE gateway = ? AND device = ? ORDER BY id",
            (gateway, device),
        )
        return [
            Replacement(
                gateway=r["gateway"],
                device=r["device"],
                at=from_epoch(r["at"]),
                actor=r["actor"],
                old_serial=r["old_serial"],
                new_serial=r["new_serial"],
                note=r["note"],
                version=r["version"],
            )
            for r in rows
        ]
