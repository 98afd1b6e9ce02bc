"""What the cloud's logs say about a run: its tracebacks, told apart, and its holds for the
database.

A log record starts with its time, level and logger (`2026-12-02 13:58:13,270 level=ERROR
logger=cloud.duty.checkin check-in sweep`); a traceback belongs to the record it follows. One
kind of traceback is the expected loss of the database, not a fault of the cloud: a record of
the cloud's own loggers whose exception is `cloud.errors.DatabaseUnavailable` (a loop that
caught it, logged it and goes on). Every other traceback counts against the cloud: an
exception of another kind, or one nobody caught (asyncio's "Task exception was never
retrieved", a thread's "Exception in thread", a traceback outside any record).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=\w+ logger=(\S+)", re.M)
_TRACEBACK = "Traceback (most recent call last):"
#: an exception's line: its (dotted) name, then ": message" or nothing
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)(?::\s|$)")
DATABASE_UNAVAILABLE = "cloud.errors.DatabaseUnavailable"
#: how Python reports a thread's uncaught exception (on stderr, outside any record)
_UNCAUGHT = "Exception in thread "

#: What ingest logs when a unit meets the database's loss, and when it goes on
#: (cloud/ingest/hold.py).
HOLDS = "database unavailable, ingest holds"
#: the reason of a hold that began at a unit's first statement (a new session refused)
_REFUSED = "connection failed:"
_BACK = re.compile(r"database back after (\d+(?:\.\d+)?) s")


@dataclass
class CloudLog:
    #: tracebacks that count against the cloud
    tracebacks: int = 0
    #: the expected ones (DatabaseUnavailable caught by a loop of the cloud), by logger
    database_unavailable: Counter[str] = field(default_factory=Counter)
    #: times ingest held for the database, and how long each hold lasted (s)
    holds: int = 0
    #: holds that began with a unit cut in flight (the session lost mid-unit), not with a
    #: server that refused a new session
    holds_cut_in_flight: int = 0
    back_after_s: list[float] = field(default_factory=list)


def read_cloud_log(text: str) -> CloudLog:
    holds = [line for line in text.splitlines() if HOLDS in line]
    out = CloudLog(holds=len(holds))
    out.holds_cut_in_flight = sum(1 for line in holds if _REFUSED not in line)
    out.back_after_s = [float(s) for s in _BACK.findall(text)]
    starts = [(m.start(), m.group(1)) for m in _RECORD.finditer(text)]
    pieces = [(0, ""), *starts] if not starts or starts[0][0] > 0 else starts
    for i, (at, logger) in enumerate(pieces):
        end = pieces[i + 1][0] if i + 1 < len(pieces) else len(text)
        record = text[at:end]
        if _TRACEBACK not in record:
            continue
        if (
            logger.startswith("cloud.")
            and _last_exception(record) == DATABASE_UNAVAILABLE
            and _UNCAUGHT not in record
        ):
            out.database_unavailable[logger] += 1
        else:
            out.tracebacks += 1
    return out


def _last_exception(record: str) -> str | None:
    tail = record[record.rindex(_TRACEBACK) :]
    names = [m.group(1) for line in tail.splitlines()[1:] if (m := _EXCEPTION.match(line))]
    return names[-1] if names else None
