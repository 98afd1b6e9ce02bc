"""Sessions of the duty-room web app, and the ones that were signed out.

The session cookie (signed by Starlette's SessionMiddleware) carries the user name, the
account's `session_key`, a random value chosen when the account is made, and the session's
own random id, new at every sign-in (`SessionRef`). Every request compares the key with the
account's current one (from memory: `current_user` in cloud/web/deps.py), so a new key — a
password reset, "sign out everywhere", or the account disabled — ends every earlier session at
once. Because the key is random (not a counter), a cookie made for an older database does not
fit a new one that happens to reuse the name.

Signing out ends one session (`EndedSessions`): its id goes into `ended_sessions` (and a set
in memory), and a cookie with that id is refused from then on, even a copy taken before. An
entry is kept until the session could not be valid anyway: the cookie is signed with its time
and re-signed on every answer, so a copy made at the last request before the sign-out lives at
most the session lifetime after it (`forget_at` = signed out + `SC_CLOUD_SESSION_MAX_AGE_S`).
A list of the ended ones rather than a table of every live session: sign-ins write nothing
more, the list holds only the sign-outs of the last hours, and it survives a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cloud.db.database import Conn, Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionRef:
    """What a session cookie holds: the account, its session key at sign-in, and the id of
    this one session."""

    name: str
    key: str
    session_id: str


class EndedSessions:
    """The sessions signed out and not yet forgotten, kept in the database and in memory."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # signed-out session ids → when they may be forgotten; read from the table at first use
        self._ended: dict[str, float] | None = None

    async def has(self, session_id: str) -> bool:
        return session_id in await self._load()

    async def end(self, session: SessionRef, *, keep_s: float) -> None:
        """Sign this one session out: its cookie (and every copy) is refused from now on;
        the record is kept `keep_s` (the longest a copy could still be valid)."""
        now = self.db.clock()
        ended = await self._load()

        def end(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO ended_sessions (session_id, name, ended_at, forget_at)"
                " VALUES (?,?,?,?) ON CONFLICT (session_id) DO UPDATE SET"
                " ended_at = excluded.ended_at, forget_at = excluded.forget_at",
                (session.session_id, session.name, now, now + keep_s),
            )
            conn.execute("DELETE FROM ended_sessions WHERE forget_at <= ?", (now,))

        await self.db.write(end)
        ended[session.session_id] = now + keep_s
        for gone in [sid for sid, forget_at in ended.items() if forget_at <= now]:
            del ended[gone]
        log.info("signed out account=%s", session.name)

    async def _load(self) -> dict[str, float]:
        if self._ended is None:
            rows = await self.db.fetch_all(
                "SELECT session_id, forget_at FROM ended_sessions WHERE forget_at > ?",
                (self.db.clock(),),
            )
            if self._ended is None:  # another request may have read it meanwhile
                self._ended = {row["session_id"]: row["forget_at"] for row in rows}
        return self._ended
