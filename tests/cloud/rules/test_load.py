"""The rules-core benchmark (`python -m bench.rules_load`) runs end to end, small."""

from __future__ import annotations

import json
from pathlib import Path

from bench.rules_load.__main__ import main


def test_the_rules_load_benchmark_runs_and_every_fire_alarm_escalates_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results.json"
    code = main(
        [
            "--gateways", "5", "--homes", "2", "--seconds", "2", "--rate", "20",
            "--burst", "4", "--burst-window", "1", "--budget-s", "0.5", "--json", str(out),
        ]
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert code == 0, results
    assert results["fire_alarms"] == 4 and results["escalated"] == 4
    assert results["alarm_latency_fire_s"]["n"] == 4
    assert results["expiry_to_step_fired_s"]["max"] < 2
