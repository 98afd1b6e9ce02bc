"""Room on the outbox's filesystem for what must still be written when the disk is full.

A gateway's SD card can fill up (logs, another program, a day-long outage). Two things must
still work then: storing new life-safety events, and deleting what the cloud acknowledged (in
WAL mode even a DELETE writes pages first). So the outbox keeps:

- a **reserve**: a file of `reserve_bytes` (4 MiB, or 1/16 of a small filesystem) made while
  there is room, given back the moment SQLite says the disk is full; events go on being
  stored in that space;
- a **floor**: once the reserve is spent (`tight`), new rows are refused (the caller keeps
  them in memory) while less than `floor_bytes` is free and the database has no free page
  to reuse — so the floor is always there for the deletes that make room again.

When deletes have made room, the reserve is made again and `tight` ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class DiskRoom:
    def __init__(
        self,
        reserve: Path,
        *,
        reserve_bytes: int | None = None,
        floor_bytes: int | None = None,
    ) -> None:
        self.reserve = reserve
        total = shutil.disk_usage(reserve.parent).total
        self.reserve_bytes = (
            reserve_bytes if reserve_bytes is not None else min(4 * MIB, total // 16)
        )
        self.floor_bytes = (
            floor_bytes if floor_bytes is not None else max(64 * 1024, min(MIB, total // 32))
        )
        self.tight = False
        self.released = 0  # times the reserve was given back
        self.make_reserve()

    def free(self) -> int:
        return shutil.disk_usage(self.reserve.parent).free

    def make_reserve(self) -> bool:
        """Set the reserve aside if there is room for it above the floor; True if it exists."""
        if self.reserve_bytes <= 0:
            return False
        if self.reserve.exists():
            return True
        try:
            if self.free() < self.reserve_bytes + self.floor_bytes:
                return False
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("outbox reserve not made error=%r", str(exc))
            with contextlib.suppress(OSError):
                self.reserve.unlink()
            return False
        if self.tight:
            self.tight = False
            log.warning("outbox disk has room again; reserve made again")
        return True

    def release(self) -> bool:
        """The disk is full: give the reserve back (from now on `tight`)."""
        self.tight = True
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        self.released += 1
        return True

    def may_grow(self, free_pages: int) -> bool:
        """Whether a new row may be written: always, unless the disk is tight, below the
        floor, and the database has no free page of its own to put it in."""
        return not self.tight or free_pages > 0 or self.free() >= self.floor_bytes
