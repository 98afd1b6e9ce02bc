"""The two-channel benchmark (`python -m bench.notify_latency`) runs end to end, small."""

from __future__ import annotations

import json
from pathlib import Path

from bench.notify_latency import main


def test_the_notify_benchmark_runs_and_every_fire_reaches_two_channels(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    code = main(["--fires", "3", "--interval", "0.1", "--json", str(out)])
    results = json.loads(out.read_text())
    assert code == 0, results
    assert results["reached_two"] == 3
    assert results["received"] == {"sms_aliyun": 3, "wecom": 3, "voice_aliyun": 0}
    assert results["latency"]["two_channels"]["max"] < 15_000
