"""Run the cloud: ingest from the broker, the rules core, the alarm book and the web app.

Configuration comes from the environment (`SC_CLOUD_*`, see cloud/settings.py). SIGHUP
re-reads the rules file (validated first; a bad file is refused and logged, the rules in force
stay), like `POST /api/rules/reload`.

Two lines on stdout tell a supervisor (or a script) how far start-up got: `duty room: URL`
once the web app answers — with or without the broker, which is retried until it is there —
and `ingest connected` once ingest first consumes from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys

from pydantic import ValidationError

from cloud.errors import DatabaseUnavailable
from cloud.parts import Cloud, open_cloud
from cloud.serve import serve
from cloud.settings import CloudSettings
from contract.site import ConfigFileError


async def _reload(cloud: Cloud) -> None:
    with contextlib.suppress(ConfigFileError):  # refused: logged and audited by the reloader
        await cloud.reloader.reload("sighup")


async def _say_when_connected(cloud: Cloud) -> None:
    await cloud.ingest.connected.wait()
    print("ingest connected", flush=True)


#: The collector's first threshold once the cloud runs (CPython's default is 700): a collection
#: after every 50,000 new container objects rather than every 700 (a few events' worth).
GC_THRESHOLD_0 = 50_000


def _settle_heap() -> None:
    """Once started: what start-up built (the app, the models' schemas, the site; ~150,000
    objects) is moved out of the collector's sight, and the young generation is collected
    less often. Collections had scanned that whole heap again and again — about a third of
    the cloud's CPU per event while it drained a backlog (docs/benchmarks.md). Memory freed by
    reference counts is freed as ever; only a reference cycle among start-up's objects would
    now stay, and cycles made later are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])


async def _main(settings: CloudSettings) -> None:
    async with open_cloud(settings) as cloud:
        started = asyncio.Event()
        task = asyncio.create_task(serve(cloud, started=started))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        reloads: set[asyncio.Task[None]] = set()

        def on_hangup() -> None:
            reload = asyncio.create_task(_reload(cloud))
            reloads.add(reload)
            reload.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            _settle_heap()
            print(f"duty room: {cloud.web_url}", flush=True)
        ingest = asyncio.create_task(_say_when_connected(cloud))
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            ingest.cancel()
        logging.getLogger("cloud").info("stopped cleanly")


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    try:
        settings = CloudSettings()
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_main(settings))
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:  # at start: nothing to hold yet; the service restarts
        print(f"cannot start: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
