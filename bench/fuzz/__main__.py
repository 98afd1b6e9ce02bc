"""`python -m bench.fuzz`: junk from one gateway's account to the real cloud while another
gateway raises valid smoke alarms.

    .venv/bin/python -m bench.fuzz --count 100000

The system is the fault suite's (tests/faults/): Mosquitto from the shipped configuration
(ACL included), `python -m cloud`. Gateway gw-f01's account (valid password, its own topic
subtree, so the broker lets it through) publishes `--count` mutated contract messages as fast
as the broker takes them; meanwhile gw-f02's account publishes a valid smoke alarm every
`--valid-every-s`, and a signed-in operator holds the live alarm stream. Printed:
- crashes: the cloud process died, tracebacks in its log, `internal_error` rejects;
- alarms raised by invalid input (everything gw-f01 sends is invalid by construction) and
  invalid messages the cloud stored as if valid;
- rejects by reason (`GET /api/stats`);
- the delay of each valid alarm (published → on the operator's live stream), and whether the
  cloud stored every one;
- the cloud's memory (RSS) before and after the flood.
docs/reliability.md lists the mutations and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bench.fuzz.flood import run_fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=100_000, help="junk messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--valid-every-s",
        type=float,
        default=0.5,
        help="the other gateway's valid smoke alarm period",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=900.0,
        help="how long to wait for the cloud to handle the flood",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_fuzz(
            args.count,
            seed=args.seed,
            valid_every_s=args.valid_every_s,
            settle_s=args.settle_s,
            keep=args.keep,
        )
    )
    print()
    print(report.text())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report.__dict__, out, indent=2, ensure_ascii=False, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
