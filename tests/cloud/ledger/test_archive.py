"""The record's archive (`python -m cloud.ledger.archive`): the alarms of a period with their
whole log, and the audit, copied out of a real database with a manifest whose checksums fit."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from cloud.access.audit import Audit
from cloud.db.database import Database
from cloud.ledger import archive
from tests.cloud.ledger.test_cases import CASES, write_known_cases


async def test_a_period_is_archived_with_its_logs_and_a_manifest_that_checks(
    tmp_path: Path,
) -> None:
    database = tmp_path / "cloud.db"
    made = await write_known_cases(database)  # 2 and 3 March 2026, Beijing time
    db = await Database.open(database)
    try:
        await Audit(db).record("adm", "export", "台账导出")  # now
    finally:
        await db.close()

    out = tmp_path / "2026-03"
    argv = ["--database", str(database), "--out", str(out)]
    argv += ["--from", "2026-03-01", "--to", "2026-04-01"]
    assert await asyncio.to_thread(archive.main, argv) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["alarms"], manifest["audit"]) == (len(CASES) + 1, 0)
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    alarms = [json.loads(line) for line in (out / "alarms.jsonl").read_text().splitlines()]
    assert sorted(a["id"] for a in alarms) == sorted(made.values())
    a2 = next(a for a in alarms if a["id"] == made["a2"])
    assert a2["outcome"] == "false_alarm" and a2["title_zh"]
    assert [line["action"] for line in a2["log"]][:1] == ["raised"]
    assert {"accepted", "resolved"} <= {line["action"] for line in a2["log"]}

    # only what the period holds: the day before the cases has none, today has the audit
    db = await Database.open(database)
    try:
        before = await archive.archive(db, tmp_path / "before", date(2026, 3, 1), date(2026, 3, 2))
        today = date.today()
        now = await archive.archive(
            db, tmp_path / "now", today, date.fromordinal(today.toordinal() + 2)
        )
    finally:
        await db.close()
    assert (before.alarms, before.audit) == (0, 0)
    assert (now.alarms, now.audit) == (0, 1)
    [line] = (tmp_path / "now" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert (entry["actor"], entry["action"], entry["detail"]) == ("adm", "export", "台账导出")
    with pytest.raises(ValueError, match="must be after"):
        await archive.archive(db, tmp_path / "x", date(2026, 3, 2), date(2026, 3, 2))
