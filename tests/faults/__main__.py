"""`python -m tests.faults`: the fault scenarios at full size, with a summary table.

.venv/bin/python -m tests.faults                          # every scenario once
.venv/bin/python -m tests.faults -s broker-kill -n 5      # one scenario, five times
.venv/bin/python -m tests.faults -s database-kill         # the cloud on PostgreSQL, killed
.venv/bin/python -m tests.faults -s worker-kill           # 2 cloud workers, sharded ingest
.venv/bin/python -m tests.faults -s database-failover     # on PostgreSQL under Patroni: failovers
.venv/bin/python -m tests.faults -s cluster-node-cut      # a cluster node cut off (as root)
.venv/bin/python -m tests.faults --size small --rate 30   # the pytest sizes, slower stream
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from tests.faults.netns import NoNamespaces
from tests.faults.scenarios import SCENARIOS, Result, Size
from tests.faults.site import max_rate
from tests.faults.stack import CannotMount, Options

#: command-line option → the scenario parameter it sets (where a scenario has it)
PARAMS = {
    "kills": "kills",
    "cloud_down_s": "down_s",
    "clean_restart": "clean",
    "offline_s": "offline_s",
    "day_s": "day_s",
    "disk_mb": "disk_mb",
    "moments": "moments",
    "cuts": "cuts",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.faults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-s",
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run this scenario (repeatable; default: all)",
    )
    p.add_argument("-n", "--repeat", type=int, default=1, help="runs of each scenario")
    p.add_argument(
        "--size",
        choices=[s.value for s in Size],
        default=Size.FULL.value,
        help="full (default) or small (the pytest sizes)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help=f"life-safety events/s per agent (at most {max_rate():.0f})",
    )
    p.add_argument(
        "--duration",
        type=float,
        help="stream length, s (default 30 at full size; scenarios that need longer take longer)",
    )
    p.add_argument("--seed", type=int, help="random seed for the fault moments")
    p.add_argument(
        "--kills", type=int, help="cloud-kill / gateway-kill / database-kill: how many kills"
    )
    p.add_argument("--cuts", type=int, help="cluster-node-cut: how many cuts")
    p.add_argument(
        "--moments",
        type=lambda v: tuple(v.split(",")),
        help="broker-kill: comma-separated of early, before-resubscribe, after-resubscribe, late",
    )
    p.add_argument("--cloud-down-s", type=float, help="cloud-down-broker-restart: down time")
    p.add_argument(
        "--clean-restart",
        action="store_true",
        help="cloud-down-broker-restart: stop the broker cleanly (it saves)",
    )
    p.add_argument("--offline-s", type=float, help="gateway-offline-day: real seconds offline")
    p.add_argument("--day-s", type=float, help="gateway-offline-day: simulated seconds offline")
    p.add_argument("--disk-mb", type=float, help="disk-full: the outbox filesystem's size")
    p.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        help="extra argument for every gateway agent (repeatable)",
    )
    p.add_argument(
        "--cloud-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra SC_CLOUD_* setting for the cloud (repeatable)",
    )
    p.add_argument(
        "--settle-s", type=float, default=120.0, help="deadline to settle after the stream"
    )
    p.add_argument("--keep", action="store_true", help="keep the work folders")
    p.add_argument("--json", type=Path, help="write the results here")
    return p


def _kwargs(name: str, args: argparse.Namespace) -> dict[str, Any]:
    accepted = inspect.signature(SCENARIOS[name].run).parameters
    out = {}
    for option, param in PARAMS.items():
        value = getattr(args, option)
        if value not in (None, False) and param in accepted:
            out[param] = value
    return out


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


HEADERS = (
    "scenario",
    "run",
    "sent",
    "stored",
    "lost",
    "doubled",
    "out of order",
    "unrecorded",
    "recover s",
    "flow s",
    "settled",
    "cloud tracebacks",
)


def row(result: Result, run: int) -> list[str]:
    c = result.counts
    return [
        result.scenario,
        str(run),
        str(c.sent),
        str(c.stored),
        str(c.lost),
        str(c.doubled),
        str(c.out_of_order),
        str(c.unrecorded),
        _fmt(c.recover_s),
        _fmt(c.flow_s),
        "yes" if result.settled.converged else f"no ({result.settled.waiting} left)",
        str(result.cloud_tracebacks),
    ]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def describe(result: Result) -> str:
    c = result.counts
    parts = [
        f"sent {c.sent}, stored {c.stored}, lost {c.lost}, doubled {c.doubled},"
        f" out of order {c.out_of_order}, unrecorded {c.unrecorded}, gaps {c.gaps}"
    ]
    for r in c.recoveries:
        parts.append(
            f"  {r.fault.what}: backlog stored after {_secs(r.backlog_s)}, first new event"
            f" after {_secs(r.flow_s)}"
            + (f"; {r.lost_before} sent before its end lost" if r.lost_before else "")
        )
    interesting = {k: v for k, v in {**c.detail, **result.extra}.items() if v}
    if interesting:
        parts.append(f"  {json.dumps(interesting, ensure_ascii=False)}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.rate <= max_rate():
        print(f"--rate must be in (0, {max_rate():.0f}]", file=sys.stderr)
        return 2
    env = dict(item.split("=", 1) for item in args.cloud_env)
    duration = args.duration
    if duration is None:
        duration = 30.0 if args.size == Size.FULL.value else 0.0
    opts = Options(
        rate=args.rate,
        duration_s=duration,
        agent_args=tuple(args.agent_arg),
        cloud_env=env,
        settle_s=args.settle_s,
        keep=args.keep,
    )
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    names = args.scenario or list(SCENARIOS)
    print(f"fault suite: {', '.join(names)} x{args.repeat}, size {args.size}, seed {seed}")
    rows: list[list[str]] = []
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for name in names:
        for run in range(1, args.repeat + 1):
            print(f"\n== {name} run {run}: {SCENARIOS[name].title}", flush=True)
            t = time.monotonic()
            try:
                result = SCENARIOS[name].run(opts, Size(args.size), rng, **_kwargs(name, args))
            except (CannotMount, NoNamespaces) as exc:
                print(f"   skipped: {exc}")
                continue
            print(describe(result))
            print(f"   ({time.monotonic() - t:.0f} s)", flush=True)
            rows.append(row(result, run))
            results.append(
                {"scenario": name, "run": run, "counts": c_dict(result), "extra": result.extra}
            )
    print(f"\nsummary (life-safety events; {time.monotonic() - started:.0f} s, seed {seed})")
    if rows:
        print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


def c_dict(result: Result) -> dict[str, Any]:
    c = result.counts
    return {
        "sent": c.sent,
        "stored": c.stored,
        "lost": c.lost,
        "doubled": c.doubled,
        "out_of_order": c.out_of_order,
        "unrecorded": c.unrecorded,
        "gaps": c.gaps,
        "recover_s": c.recover_s,
        "flow_s": c.flow_s,
        "settled": result.settled.converged,
        "cloud_tracebacks": result.cloud_tracebacks,
        "detail": c.detail,
        "faults": [
            {
                "what": r.fault.what,
                "backlog_s": r.backlog_s,
                "flow_s": r.flow_s,
                "lost_before": r.lost_before,
            }
            for r in c.recoveries
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
