"""kill -9 of a process and every process below it, as one crash (PostgreSQL's backends each
lead a process group of their own: a kill of the postmaster's group leaves them running)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def kill_tree(pid: int, within_s: float = 10.0) -> None:
    """kill -9 of `pid` and every process below it, as one crash: the root is stopped first
    (it starts nothing more), then all are killed. Returns once none is left (a zombie counts
    as gone: it holds no socket or file)."""
    os.kill(pid, signal.SIGSTOP)
    tree = [pid, *_descendants(pid)]
    for each in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.01)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """`pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
