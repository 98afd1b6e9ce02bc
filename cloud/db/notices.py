"""Notices between cloud processes that share one PostgreSQL: `LISTEN`/`NOTIFY` on one channel
(`sc_notices`, scoped to the database), on two sessions of their own — one sends, one listens
— opened with psycopg's async connection, so neither ever blocks the event loop nor waits
behind the database's units of work. (psycopg is imported here as well as in
cloud/db/postgres.py: that module's connection is synchronous, for the units of work on the
database's threads; a LISTEN session must wait for notices on the event loop.)

A notice is a kind (one letter, the caller's) and a text body. `send` only queues it (in order,
never blocking); the sender sends everything queued in one statement (`pg_notify` over an
array, one transaction: delivered together when it commits, in the order queued), so a burst
costs one round trip. A body too large for one NOTIFY (PostgreSQL refuses 8000 bytes and more)
goes as several parts, joined again by the listeners. Each notice carries its sender's id and
number: a process ignores its own, and no two notices are ever identical (PostgreSQL folds
identical notices of one transaction into one).

Lost sessions: the sender keeps what it could not send and sends it when a new session is
open (a notice whose COMMIT was sent but not answered may then arrive twice); the listener
opens a new session with back-off, logging one line when the session is lost and one when it
listens again, and after every LISTEN (the first one too) calls `on_listen`: what other
processes sent meanwhile is lost, so whatever the notices keep in step must be read again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "sc_notices"

#: Bytes of body in one NOTIFY (PostgreSQL's limit is 8000 bytes for the whole payload).
PART_BYTES = 7000

#: Payloads sent in one statement at most (a larger backlog goes in several).
BATCH = 500

#: Notices kept while they cannot be sent; beyond this the oldest are dropped (counted).
PENDING_MAX = 20_000

_SEND = f"SELECT pg_notify('{CHANNEL}', p) FROM unnest(%s::text[]) AS p"

_SESSION: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "application_name": "sc-cloud-notices",
    # a server that vanished without closing the socket is noticed in about 5 + 3 × 2 s
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


@dataclass(frozen=True, slots=True)
class Notice:
    sender: str
    kind: str
    body: str


def payloads(sender: str, number: int, kind: str, body: str) -> list[str]:
    """The NOTIFY payloads of one notice: `sender number part parts kind|body-part`."""
    if len(body) * 4 <= PART_BYTES:  # surely short enough, without encoding it
        return [f"{sender} {number} 1 1 {kind}|{body}"]
    data = body.encode()
    parts: list[bytes] = []
    while data:
        cut = min(PART_BYTES, len(data))
        while cut < len(data) and data[cut] & 0xC0 == 0x80:  # not inside a character
            cut -= 1
        parts.append(data[:cut])
        data = data[cut:]
    return [
        f"{sender} {number} {at} {len(parts)} {kind}|{part.decode()}"
        for at, part in enumerate(parts or [b""], 1)
    ]


class NoticeLink:
    """This process's end of the notices on the PostgreSQL at `url` (libpq's URL form)."""

    def __init__(self, url: str, *, retry_min_s: float = 0.2, retry_max_s: float = 5.0) -> None:
        self.url = url
        self.sender = uuid.uuid4().hex[:12]
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        #: sent, send_failed, dropped, received, listen_lost, broken (parts never completed),
        #: foreign (a NOTIFY on the channel that is not a notice)
        self.counts: Counter[str] = Counter()
        #: set while the LISTEN session is open and `on_listen` has run on it
        self.listening = asyncio.Event()
        self._number = 0
        self._pending: deque[list[str]] = deque()  # each notice's payloads
        self._wake = asyncio.Event()
        self._parts: dict[str, tuple[int, list[str]]] = {}  # sender → (number, parts so far)

    @property
    def pending(self) -> int:
        """Notices queued and not yet sent."""
        return len(self._pending)

    # ---- sending ----------------------------------------------------------------------------

    def send(self, kind: str, body: str) -> None:
        """Queue a notice for every other process (never blocks, never raises)."""
        self._number += 1
        self._pending.append(payloads(self.sender, self._number, kind, body))
        if len(self._pending) > PENDING_MAX:
            self._pending.popleft()
            self.counts["dropped"] += 1
        self._wake.set()

    async def sending(self) -> None:
        """Send what is queued, one statement per batch, until cancelled."""
        conn: psycopg.AsyncConnection[Any] | None = None
        delay = self.retry_min_s
        failing = False
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch: list[str] = []
                notices = 0
                for notice in self._pending:
                    if batch and len(batch) + len(notice) > BATCH:
                        break
                    batch += notice
                    notices += 1
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(self.url, **_SESSION)
                    await conn.execute(_SEND, (batch,))
                except psycopg.Error as exc:
                    self.counts["send_failed"] += notices
                    if conn is not None and not conn.closed and not conn.broken:
                        # the statement's own fault: sending it again would fail again
                        log.error("notices: %d not sent and dropped: %s", notices, exc)
                        self._take(notices)
                        continue
                    if not failing:
                        log.warning("notices: cannot send, kept to send again (%s)", exc)
                        failing = True
                    if conn is not None:
                        await conn.close()
                    conn = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                self._take(notices)
                self.counts["sent"] += notices
                delay = self.retry_min_s
                if failing:
                    log.warning("notices: sending again")
                    failing = False
        finally:
            if conn is not None:
                await conn.close()

    def _take(self, notices: int) -> None:
        for _ in range(notices):
            self._pending.popleft()

    # ---- listening --------------------------------------------------------------------------

    async def listen(
        self,
        on_notice: Callable[[Notice], Awaitable[None]],
        on_listen: Callable[[], Awaitable[None]],
    ) -> None:
        """Hand every other process's notice to `on_notice`, in the order each sent them,
        until cancelled; `on_listen` after every LISTEN. A notice `on_notice` fails on, or an
        `on_listen` that fails, ends the session: the next one reads everything again."""
        delay = self.retry_min_s
        lost = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, **_SESSION) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._parts.clear()
                    await on_listen()
                    self.listening.set()
                    delay = self.retry_min_s
                    if lost:
                        log.warning("notices: listening again; caches read again")
                        lost = False
                    async for message in conn.notifies():
                        notice = self._joined(message.payload)
                        if notice is not None:
                            self.counts["received"] += 1
                            await on_notice(notice)
            except Exception as exc:  # a lost session, or a notice or reload that failed
                self.listening.clear()
                self.counts["listen_lost"] += 1
                if not lost:
                    log.warning("notices: LISTEN session lost (%s); opening a new one", exc)
                    lost = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    def _joined(self, payload: str) -> Notice | None:
        """The notice a payload completes (None: another part is to come, it is ours, or it
        is not a notice of ours at all — counted as `foreign`)."""
        head, _, text = payload.partition("|")
        fields = head.split(" ")
        if len(fields) != 5 or not all(f.isdigit() for f in fields[1:4]):
            self.counts["foreign"] += 1
            return None
        sender, number, at, parts, kind = fields
        if sender == self.sender:
            return None
        if parts == "1":
            return Notice(sender, kind, text)
        so_far = self._parts.get(sender)
        if at == "1":
            if so_far is not None:
                self.counts["broken"] += 1
            so_far = (int(number), [])
            self._parts[sender] = so_far
        elif so_far is None or so_far[0] != int(number):
            self.counts["broken"] += 1  # its first parts were sent before we listened
            return None
        so_far[1].append(text)
        if at != parts:
            return None
        del self._parts[sender]
        return Notice(sender, kind, "".join(so_far[1]))
