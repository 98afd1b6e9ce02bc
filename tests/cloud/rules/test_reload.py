"""Rules changed while running: validated first, applied in one step, audited; a bad file is
refused with file and field and the rules in force stay. By the API (admins) and by SIGHUP."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud.settings import DEFAULT_RULES
from tests.cloud.conftest import (
    Publisher,
    cloud_settings,
    eventually,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import rules_file
from tests.cloud.ingest.test_ingest import active
from tests.db_backends import outside_connection
from tests.servers import REPO, Mosquitto


def methane(pct: float) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "gateway": "gw-ld01",
        "boot": "b",
        "seq": 1,
        "readings": [
            {
                "device": "gas-0101",
                "ts": datetime.now(UTC).isoformat(),
                "kind": "gas",
                "values": {"ch4_pct_lel": pct},
            }
        ],
    }


def lower_methane_bound(data: dict[str, Any]) -> None:
    data["version"] = "test-2"
    data["thresholds"][0]["levels"] = [
        {"at_or_above": 5, "level": 2},
        {"at_or_above": 25, "level": 1},
    ]
    data["thresholds"][0]["clear_below"] = 4


async def test_an_admin_reloads_the_rules_a_bad_file_is_refused_and_both_are_audited(
    tmp_path: Path, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    path = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES, path)
    settings = cloud_settings(tmp_path, mosquitto, rules_file=path, database=database_url)
    async with running_cloud(settings) as running:
        admin = await signed_in(running.url, "adm")
        operator = await signed_in(running.url, "op")
        supervisor = await signed_in(running.url, "sup")
        try:
            before = (await supervisor.get("/api/rules")).json()
            assert before["version"] == "2026-11-default-2" and before["rules"] > 10
            assert (await operator.get("/api/rules")).status_code == 403
            assert (await supervisor.post("/api/rules/reload")).status_code == 403

            gw1.publish("sc/v1/gw-ld01/telemetry", methane(6.0))
            await eventually(lambda: running.cloud.ingest.counts["readings"] == 1)
            assert await active(operator) == []  # 6 % LEL: under the default 10 %

            rules_file(tmp_path, lower_methane_bound)  # the file is edited in place
            reloaded = await admin.post("/api/rules/reload")
            assert reloaded.status_code == 200, reloaded.text
            body = reloaded.json()
            assert body["version"] == "test-2" and body["changed"] == ["methane_high"]
            assert body["digest"] != before["digest"]

            gw1.publish("sc/v1/gw-ld01/telemetry", methane(6.0))
            [alarm] = await eventually(lambda: active(operator))
            assert (alarm["rule"], alarm["level"]) == ("methane_high", 2)

            # a bad file: refused with file and field; the rules in force stay
            path.write_text(path.read_text().replace("clear_below: 4", "clear_below: 40"))
            refused = await admin.post("/api/rules/reload")
            assert refused.status_code == 422
            assert (
                str(path) in refused.json()["detail"] and "thresholds.0" in refused.json()["detail"]
            )
            path.write_text("events: [")
            assert (await admin.post("/api/rules/reload")).status_code == 422
            assert (await admin.get("/api/rules")).json()["version"] == "test-2"
            gw1.publish("sc/v1/gw-ld01/telemetry", methane(4.5))  # inside the band: stays
            await eventually(lambda: running.cloud.ingest.counts["readings"] == 3)
            assert [a["id"] for a in await active(operator)] == [alarm["id"]]

            audit = (await admin.get("/api/audit")).json()
        finally:
            for client in (admin, operator, supervisor):
                await client.aclose()
    entries = [(e["actor"], e["action"]) for e in audit]
    assert entries[:3] == [
        ("adm", "rules_reload_refused"),
        ("adm", "rules_reload_refused"),
        ("adm", "rules_reloaded"),
    ]
    assert "methane_high" in audit[2]["detail"] and before["digest"] in audit[2]["detail"]


def test_sighup_reloads_the_rules_of_a_running_cloud(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    path = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES, path)
    env = dict(
        os.environ,
        SC_CLOUD_MQTT_PORT=str(mosquitto.port),
        SC_CLOUD_MQTT_PASSWORD=mosquitto.users["cloud"],
        SC_CLOUD_MQTT_CLIENT_ID=f"sighup-{uuid.uuid4().hex[:6]}",
        SC_CLOUD_DATABASE=database_url,
        SC_CLOUD_TELEMETRY_URL=f"sqlite:///{tmp_path / 'telemetry.db'}",
        SC_CLOUD_RULES_FILE=str(path),
        SC_CLOUD_WEB_PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "duty room:" in line or not line:
                break
        rules_file(tmp_path, lower_methane_bound)
        proc.send_signal(signal.SIGHUP)
        assert _audited(database_url, "rules_reloaded")
        path.write_text("events: [")
        proc.send_signal(signal.SIGHUP)
        assert _audited(database_url, "rules_reload_refused")
        assert proc.poll() is None  # a bad file does not stop the cloud
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0


def _audited(database: str, action: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(outside_connection(database)) as conn:
            rows = conn.execute("SELECT actor FROM audit WHERE action = ?", (action,)).fetchall()
        if rows:
            return rows[0][0] == "sighup"
        time.sleep(0.05)
    return False
