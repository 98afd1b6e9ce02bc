"""Sign-in limits: how many wrong passwords an address, an account name, or both may try.

Every attempt is recorded in `login_failures` *before* its password is checked, under the
database lock together with the limit check (`reserve_attempt`), and the record is removed
again when the password was right (`forgive_attempt`); so a burst of simultaneous attempts
gets no more checks than the same attempts one after the other, and a restart does not reset
the counts (they are read from the table). Within `WINDOW_S`:

- one address and one account name: `PAIR_FAILURES` failures, then 429 for that pair;
- one address, any account names: `ADDRESS_FAILURES`, then 429 for that address (a
  spray of guessed names, which also keeps the table small: rows older than the window go);
- one account from all addresses together: no lock. Locking an account on failures from
  anywhere would let anyone keep the duty room's operators out during an incident, just by
  typing wrong passwords for their names. Instead, from `ACCOUNT_SLOW_AFTER` failures on,
  every attempt on that account waits `ACCOUNT_DELAY_S` before its check (`slow_down`) — the
  operator at their own PC still signs in, a few seconds slower. An attack from many
  addresses is bounded by the per-address limits and the minimum password length.
"""

from __future__ import annotations

import asyncio
import logging

from cloud.db.database import Conn, Database
from cloud.errors import CloudError

log = logging.getLogger(__name__)

#: Failed sign-ins counted over this window.
WINDOW_S = 300.0
#: Failures for one account name from one address before that pair gets 429.
PAIR_FAILURES = 5
#: Failures from one address (any names) before the address gets 429.
ADDRESS_FAILURES = 20
#: Failures for one account from all addresses before each attempt on it is slowed down.
ACCOUNT_SLOW_AFTER = 10
ACCOUNT_DELAY_S = 2.0


class SignInLimited(CloudError):
    """Too many failed sign-ins for this account from this address, or from this address."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


def reserve_attempt(conn: Conn, name: str, client: str, now: float) -> tuple[int, int]:
    """Check the limits (raises SignInLimited, the password not even checked) and record this
    attempt as a failure until its password proves right. Returns the account's failures
    from all addresses and the record's id (for `forgive_attempt`)."""
    failures = _check_limits(conn, name, client, now)
    reservation = conn.execute(
        "INSERT INTO login_failures (at, client, name) VALUES (?,?,?) RETURNING id",
        (now, client, name),
    ).fetchone()[0]
    conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - WINDOW_S,))
    return failures, int(reservation)


async def slow_down(name: str, account_failures: int) -> None:
    """Wait before checking a password for an account many addresses got wrong."""
    if account_failures >= ACCOUNT_SLOW_AFTER:
        log.warning("sign-in slowed account=%s failures=%s", name, account_failures)
        await asyncio.sleep(ACCOUNT_DELAY_S)


async def forgive_attempt(db: Database, reservation: int) -> None:
    """The password was right: the attempt is no failure."""
    await db.execute("DELETE FROM login_failures WHERE id = ?", (reservation,))


def _check_limits(conn: Conn, name: str, client: str, now: float) -> int:
    """Raise SignInLimited if this pair or this address failed too often; else the account's
    failures from all addresses."""
    since = now - WINDOW_S
    checks = (
        ("client = ? AND name = ?", (client, name), PAIR_FAILURES, "for this account"),
        ("client = ?", (client,), ADDRESS_FAILURES, "from this address"),
    )
    for where, args, limit, what in checks:
        counted = conn.execute(
            f"SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures WHERE at > ? AND {where}",
            (since, *args),
        ).fetchone()
        if counted["n"] >= limit:
            wait = max(1, int(counted["first"] + WINDOW_S - now) + 1)
            log.warning("sign-in limited %s client=%s account=%s", what, client, name)
            raise SignInLimited(f"too many failed sign-ins {what}; try again in {wait} s", wait)
    counted = conn.execute(
        "SELECT COUNT(*) AS n FROM login_failures WHERE at > ? AND name = ?", (since, name)
    ).fetchone()
    return int(counted["n"])
