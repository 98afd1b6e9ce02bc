"""Medians over several invocations' results (written by `python -m bench.workers --json FILE`).

.venv/bin/python -m bench.workers.median a.json b.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.workers.__main__ import report, summarise
from bench.workers.phases import tier_figures


def main(argv: Sequence[str] | None = None) -> int:
    files = list(sys.argv[1:] if argv is None else argv)
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    runs: list[dict[str, Any]] = []
    for name in files:
        for run in json.loads(Path(name).read_text())["runs"]:
            for drained in (run["drain_1"], run["drain_2"]):
                if "tier_ms_per_event" not in drained:  # a file from before they were kept
                    drained.update(tier_figures(drained))
            runs.append({**run, "run": len(runs) + 1})
    print(report(runs, summarise(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
