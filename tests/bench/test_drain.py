"""`python -m bench.drain` runs end to end, small: every queued event is drained and stored,
and the figures it reports are there."""

from __future__ import annotations

import json
from pathlib import Path

from bench.drain import main


def test_the_drain_benchmark_drains_every_event_and_reports_cpu(tmp_path: Path) -> None:
    out = tmp_path / "drain.json"
    code = main(["--runs", "2", "--events", "500", "--json", str(out)])
    results = json.loads(out.read_text())
    assert code == 0, results
    assert [d["sent"] for d in results["drains"]] == [500, 500]
    for drain in results["drains"]:
        assert drain["rate"] > 0 and drain["seconds"] > 0
        # the cloud did the work: CPU spent while it drained, most of it on its event loop
        assert drain["cpu_us_per_message"] > 0
        assert drain["loop_cpu_us_per_event"] > 0
    assert results["medians"]["rate"] > 0
