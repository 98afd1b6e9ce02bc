"""The cloud's tracebacks told apart (tests/faults/cloud_log.py): a DatabaseUnavailable that a
loop of the cloud caught and logged is expected while the database is down; any other
traceback, and one nobody caught, counts against the cloud."""

from __future__ import annotations

from tests.faults.cloud_log import read_cloud_log

AT = "2026-12-02 13:58:13,270"
CAUGHT = f"""{AT} level=ERROR logger=cloud.duty.checkin check-in sweep
Traceback (most recent call last):
  File "/x/cloud/db/postgres.py", line 199, in _live
psycopg.OperationalError: connection failed: connection to server refused
\tIs the server running on that host and accepting TCP/IP connections?

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/x/cloud/duty/checkin.py", line 236, in run
cloud.errors.DatabaseUnavailable: 数据库暂时无法连接 / the database cannot be reached
\tIs the server running on that host and accepting TCP/IP connections?
"""
HOLD = f"""{AT} level=ERROR logger=cloud.ingest.hold database unavailable, ingest holds until it\
 is back: the database cannot be reached: connection failed: connection to server at\
 "127.0.0.1", port 5 failed: Connection refused
	Is the server running on that host and accepting TCP/IP connections?
{AT} level=WARNING logger=cloud.ingest.hold database back after 3.9 s; ingest goes on
"""
NEVER_RETRIEVED = f"""{AT} level=ERROR logger=asyncio Task exception was never retrieved
Traceback (most recent call last):
  File "/x/cloud/app.py", line 1, in loop
cloud.errors.DatabaseUnavailable: the database cannot be reached
"""
CUT = f"""{AT} level=ERROR logger=cloud.ingest.hold database unavailable, ingest holds until it\
 is back: the database cannot be reached: consuming input failed: server closed the connection\
 unexpectedly
"""
OTHER = f"""{AT} level=ERROR logger=cloud.routing.sender sending failed
Traceback (most recent call last):
  File "/x/cloud/routing/sender.py", line 1, in send
KeyError: 'alarm'
"""
THREAD = """Exception in thread db-read_0:
Traceback (most recent call last):
  File "/x/cloud/db/database.py", line 1, in on_reader
cloud.errors.DatabaseUnavailable: the database cannot be reached
"""


def test_a_database_unavailable_caught_by_the_cloud_is_expected() -> None:
    log = read_cloud_log(HOLD + CAUGHT + HOLD)
    assert log.tracebacks == 0
    assert dict(log.database_unavailable) == {"cloud.duty.checkin": 1}
    assert (log.holds, log.back_after_s) == (2, [3.9, 3.9])
    assert log.holds_cut_in_flight == 0  # both began with a refused session
    assert read_cloud_log(HOLD + CUT).holds_cut_in_flight == 1


def test_other_and_uncaught_tracebacks_count_against_the_cloud() -> None:
    for text in (NEVER_RETRIEVED, OTHER, THREAD, CAUGHT + THREAD):
        log = read_cloud_log(HOLD + text)
        assert log.tracebacks == 1, text
    assert read_cloud_log(THREAD + CAUGHT).tracebacks == 1  # before any record
