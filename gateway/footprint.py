"""Measure the agent's footprint: resident memory and idle CPU of a real `python -m gateway
run` process, sampled with psutil, once it has said "agent started".

    python -m gateway.footprint --seconds 60 -- --site firmware_configs/sites/demo.yaml \\
        --gateway gw-ld01 --simulate --broker-port 1883 --password …

Everything after `--` goes to `python -m gateway run`. Start-up (imports, opening the
outbox: until the agent logs "agent started", at most `--start-s`) and the `--settle-s` seconds
after it (connecting) are not counted; then RSS is sampled every second and CPU is
the process's user+system time over the measured window divided by its length (100 % = one
core). Needs psutil (`pip install psutil`; the cloud extra has it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


STARTED = b'event="agent started"'


def measure(
    run_args: Sequence[str], *, seconds: float, settle_s: float, start_s: float = 60.0
) -> dict[str, float]:
    import psutil  # only this tool needs it

    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", *run_args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = threading.Event()

    def read_log() -> None:  # until the agent ends: a full pipe would stop it
        assert proc.stderr is not None
        for line in proc.stderr:
            if STARTED in line:
                started.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        ps = psutil.Process(proc.pid)
        deadline = time.monotonic() + start_s
        while not started.wait(0.05):
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited {proc.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start within {start_s:g} s")
        time.sleep(settle_s)
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited {proc.returncode} during start-up")
        cpu0, t0 = ps.cpu_times(), time.monotonic()
        rss: list[float] = []
        while time.monotonic() - t0 < seconds:
            rss.append(ps.memory_info().rss / 2**20)
            time.sleep(1.0)
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited {proc.returncode} while measured")
        cpu1, t1 = ps.cpu_times(), time.monotonic()
        threads = ps.num_threads()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "seconds": round(t1 - t0, 1),
        "rss_mb_median": round(statistics.median(rss), 1),
        "rss_mb_max": round(max(rss), 1),
        "cpu_pct_of_one_core": round(100 * busy / (t1 - t0), 2),
        "threads": threads,
        "exit_code": proc.returncode,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, run_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(prog="python -m gateway.footprint", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(run_args, seconds=args.seconds, settle_s=args.settle_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
