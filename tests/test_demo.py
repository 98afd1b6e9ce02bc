"""The README's first command: the simulated community runs, starts its scenario once the duty
room opens a page, plays it again on SIGUSR1, raises its alarms, says its sign-in plainly and
without warnings, and stops cleanly."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from sim.community import SCENARIO
from tests.servers import REPO


def test_demo_raises_the_scripted_alarms_and_shuts_down_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "--port", "0", "--workdir", str(tmp_path),
         "--password", "demo-pass-1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
    expected = {
        ("call_for_help", 1, "call-0101"),
        ("smoke_alarm", 1, "smoke-0301"),
        ("methane_high", 1, "gas-0101"),
        ("pm25_24h", 4, "air-0201"),
    }
    try:
        reader.start()
        _wait_for(lambda: any("Ctrl-C" in line for line in lines), 60, lines)
        out = "".join(lines)
        url = re.search(r"duty room: (http://127\.0\.0\.1:\d+)", out)
        assert url, out
        # nothing happens until the duty room opens a page: a visitor sees fresh alarms
        # (a negative check: it gets the time of the scenario's first step, and a second more)
        time.sleep(SCENARIO[0].at_s + 1)
        assert _alarms(tmp_path / "cloud.db") == set()
        assert not any("情景 / scenario:" in line for line in lines)
        with httpx.Client(base_url=url.group(1), timeout=10) as duty:
            duty.post("/api/login", json={"username": "duty", "password": "demo-pass-1"})
            with duty.stream("GET", "/api/alarms/stream") as stream:
                assert stream.status_code == 200
                _wait_for(lambda: expected <= _alarms(tmp_path / "cloud.db"), 60, lines)
        # played again on SIGUSR1
        _wait_for(lambda: any("甲烷回落" in line for line in lines), 60, lines)
        proc.send_signal(signal.SIGUSR1)
        _wait_for(lambda: sum("按下一键呼叫按钮" in line for line in lines) == 2, 30, lines)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "gateway gw-ld01: online" in out and "gateway gw-ld02: online" in out
    assert "duty 值班员 (operator) · leader 督导 (supervisor)" in out
    assert "密码均为 / all with password demo-pass-1" in out
    assert "重放情景 / replaying the scenario" in out
    assert "stopped cleanly" in out
    assert "WARNING" not in out, out  # nothing that looks like an error when nothing is wrong
    # the terminal's clock is Beijing time, as the pages are
    beijing = datetime.now(timezone(timedelta(hours=8)))
    stamps = re.findall(r"^\[(\d\d):(\d\d):\d\d\]", out, re.MULTILINE)
    assert stamps and abs(int(stamps[-1][0]) - beijing.hour) % 24 in (0, 1, 23)

    raised = _alarms(tmp_path / "cloud.db")
    assert expected <= raised
    # the dusty air may also push the PM10 24 h mean over its limit; nothing else may page
    assert {rule for rule, _, _ in raised - expected} <= {"pm10_24h"}
    with sqlite3.connect(tmp_path / "cloud.db") as db:
        assert db.execute("SELECT count(*) FROM rejected").fetchone() == (0,)


def _read_lines(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)


def _wait_for(check: Callable[[], bool], timeout: float, lines: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)


def _alarms(path: Path) -> set[tuple[str, int, str]]:
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        try:
            return set(db.execute("SELECT rule, level, device FROM alarms"))
        except sqlite3.OperationalError:  # not created yet
            return set()
