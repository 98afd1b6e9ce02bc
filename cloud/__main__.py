"""Run the cloud: ingest from the broker, the rules core, the alarm book and the web app.

Configuration comes from the environment (`SC_CLOUD_*`, see cloud/settings.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from cloud.service import open_cloud, serve
from cloud.settings import CloudSettings
from contract.site import ConfigFileError


async def _main(settings: CloudSettings) -> None:
    async with open_cloud(settings) as cloud:
        started = asyncio.Event()
        task = asyncio.create_task(serve(cloud, started=started))
        await started.wait()
        print(f"duty room: {cloud.web_url}", flush=True)
        await task


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
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
