"""A benchmark's results as JSON: the options it ran with, the machine, then its own sections."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any


def write_results(
    path: Path, opts: argparse.Namespace, load_at_start: tuple[float, float, float], **sections: Any
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": load_at_start,
    }
    path.write_text(json.dumps({"options": options, "machine": machine, **sections}, indent=1))
