"""`python -m sim`: run the simulated community (see sim/community.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from cloud.settings import DEFAULT_SITE
from contract.site import ConfigFileError
from sim.community import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="site file")
    parser.add_argument("--port", type=int, default=8000, help="web port (0: any free port)")
    parser.add_argument("--workdir", type=Path, help="where state goes (default: a new temp dir)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--password", help="password of the demo accounts (default: random)")
    parser.add_argument(
        "--no-scenario",
        action="store_true",
        help="a quiet community: the scenario plays only when replayed (panel or SIGUSR1)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every component")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    if not args.verbose:
        # expected in the demo, not errors: it manages no broker password file, has no
        # webhook (notifications are recorded as skipped; the board still gets every alarm),
        # and the simulated gateways' local lamp and sounder react to the scenario's alarms
        # (the scenario's own lines say what happens)
        for name in ("cloud.access.credentials", "cloud.parts", "edge.local"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return asyncio.run(
            run_demo(
                site_file=args.site,
                web_port=args.port,
                workdir=args.workdir,
                duration_s=args.duration,
                password=args.password,
                scenario=not args.no_scenario,
            )
        )
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
