"""The README's first command: the simulated community runs, raises its alarms, stops cleanly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import REPO


def test_demo_raises_the_scripted_alarms_and_shuts_down_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "--port", "0", "--workdir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    expected = {
        ("call_for_help", 1, "call-0101"),
        ("smoke_alarm", 1, "smoke-0301"),
        ("methane_high", 1, "gas-0101"),
        ("pm25_24h", 4, "air-0201"),
    }
    try:
        assert proc.stdout is not None
        while line := proc.stdout.readline():
            lines.append(line)
            if "Ctrl-C" in line:
                break
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not expected <= _alarms(tmp_path / "cloud.db"):
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=30)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "duty room: http://127.0.0.1:" in out
    assert "gateway gw-ld01: online" in out and "gateway gw-ld02: online" in out
    assert "stopped cleanly" in out

    raised = _alarms(tmp_path / "cloud.db")
    assert expected <= raised
    # the dusty air may also push the PM10 24 h mean over its limit; nothing else may page
    assert {rule for rule, _, _ in raised - expected} <= {"pm10_24h"}
    with sqlite3.connect(tmp_path / "cloud.db") as db:
        assert db.execute("SELECT count(*) FROM rejected").fetchone() == (0,)


def _alarms(path: Path) -> set[tuple[str, int, str]]:
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        try:
            return set(db.execute("SELECT rule, level, device FROM alarms"))
        except sqlite3.OperationalError:  # not created yet
            return set()
