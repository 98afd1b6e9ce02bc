"""One-time claim codes: how a gateway on site proves it is the one the installer means.

An installer (or an admin) asks for a code for a registered gateway; it is shown once, as
XXXX-XXXX: 8 characters from 31 that cannot be mistaken for each other on a phone screen
(no 0/O, no 1/I/L), 31^8 ≈ 8.5·10^11 ≈ 2^39.6 possibilities. The gateway sends it to
`POST /api/provision/claim`; the cloud answers with the gateway's credentials and config.

- Only a keyed hash of the code is stored (HMAC-SHA256 with the server's secret), so the
  database alone does not give the codes away, not even by trying all 31^8 of them.
- A code expires after `claim_code_ttl_s`, can be used once, and a newer code for the same
  gateway voids the older one. Who asked for it, and when it was used, are audited.
- Guessing is limited: every refused code is recorded (`claim_failures`) with the client's
  address; an address with `ADDRESS_FAILURES` refusals in `WINDOW_S`, or the whole service
  with `GLOBAL_FAILURES` (a guess spread over many addresses), is answered 429 without the
  code even being looked at, until the window has moved on. The counts are read from the
  table, so a restart does not reset them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.db.database import Conn, Database, Row
from cloud.errors import CloudError
from cloud.times import from_epoch
from contract.provisioning import CLAIM_ALPHABET, CLAIM_CODE_LENGTH

log = logging.getLogger(__name__)

#: Refused codes per client address in the window before it is answered 429.
ADDRESS_FAILURES = 5
#: Refused codes in the window, from all addresses together, before everyone gets 429.
GLOBAL_FAILURES = 30
WINDOW_S = 600.0
#: Failures older than this are deleted (they no longer count for anything).
KEEP_FAILURES_S = 30 * 86400.0


class ClaimRefusal(StrEnum):
    """Why a claim code was refused (also the `X-Claim-Error` header of the answer)."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    REPLACED = "replaced"
    RATE_LIMITED = "rate_limited"


class ClaimRefused(CloudError):
    def __init__(self, reason: ClaimRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ClaimLimited(ClaimRefused):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(ClaimRefusal.RATE_LIMITED, message)
        self.retry_after_s = retry_after_s


class IssuedCode(BaseModel):
    """A new code: shown to the installer once, never stored in the clear."""

    gateway: str
    code: str  # XXXX-XXXX
    expires_at: datetime
    created_by: str


class PendingCode(BaseModel):
    """A live code of a gateway (not the code itself)."""

    gateway: str
    created_by: str
    created_at: datetime
    expires_at: datetime


class ClaimFailure(BaseModel):
    at: datetime
    client: str
    reason: ClaimRefusal
    gateway: str | None


@dataclass(frozen=True)
class Redeemed:
    """A code that was just used: which gateway, and who created the code."""

    id: int
    gateway: str
    created_by: str


def new_code() -> str:
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(CLAIM_CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalise(code: str) -> str | None:
    """The code's 8 characters (upper case, without spaces and dashes), or None if it cannot
    be a code."""
    raw = "".join(ch for ch in code.upper() if ch not in " -\t")
    if len(raw) != CLAIM_CODE_LENGTH or any(ch not in CLAIM_ALPHABET for ch in raw):
        return None
    return raw


class Claims:
    def __init__(self, db: Database, audit: Audit, *, secret: bytes, ttl_s: float) -> None:
        if not secret:
            raise ValueError("claim codes need a secret key for their hash")
        self.db = db
        self.audit = audit
        # a key of its own, derived from the server's secret (not the session key itself)
        self._key = hashlib.sha256(b"sc-claim-codes\0" + secret).digest()
        self.ttl_s = ttl_s

    def _hash(self, raw: str) -> str:
        return hmac.new(self._key, raw.encode(), hashlib.sha256).hexdigest()

    # ---- creating ---------------------------------------------------------------------------

    async def create(self, gateway: str, actor: str) -> IssuedCode:
        """A new code for the gateway; any earlier live code of it is void from now on."""
        code = new_code()
        now = self.db.clock()
        expires = now + self.ttl_s

        def create(conn: Conn) -> None:
            voided = conn.execute(
                "UPDATE claim_codes SET voided_at = ? WHERE gateway = ? AND used_at IS NULL"
                " AND voided_at IS NULL",
                (now, gateway),
            ).rowcount
            conn.execute(
                "INSERT INTO claim_codes (gateway, code_hash, created_by, created_at, expires_at)"
                " VALUES (?,?,?,?,?)",
                (gateway, self._hash(code.replace("-", "")), actor, now, expires),
            )
            detail = f"gateway={gateway} expires={from_epoch(expires).isoformat()}"
            if voided:
                detail += " (the earlier code is void)"
            self.audit.add(conn, actor, "claim.code_created", detail, now)

        await self.db.write(create)
        log.info("claim code created gateway=%s by=%s", gateway, actor)
        return IssuedCode(
            gateway=gateway, code=code, expires_at=from_epoch(expires), created_by=actor
        )

    # ---- redeeming --------------------------------------------------------------------------

    async def redeem(self, code: str, client: str) -> Redeemed:
        """Use a code: returns its gateway, or raises ClaimRefused (recorded as a failure) or
        ClaimLimited (not recorded). The limit check, the look-up and the record of a failure
        are one unit of work, so a burst of simultaneous guesses gets no more tries than the
        same guesses one after the other."""
        raw = normalise(code)
        now = self.db.clock()

        def redeem(conn: Conn) -> Redeemed | ClaimRefusal:
            _check_limit(conn, client, now)
            row: Row | None = None
            if raw is None:
                refusal: ClaimRefusal | None = ClaimRefusal.MALFORMED
            else:
                row = conn.execute(
                    "SELECT * FROM claim_codes WHERE code_hash = ?", (self._hash(raw),)
                ).fetchone()
                refusal = _refusal(row, now)
            if refusal is None:
                assert row is not None
                conn.execute(
                    "UPDATE claim_codes SET used_at = ?, used_from = ? WHERE id = ?"
                    " AND used_at IS NULL AND voided_at IS NULL",
                    (now, client, row["id"]),
                )
                self.audit.add(
                    conn,
                    f"claim:{client}",
                    "claim.code_used",
                    f"gateway={row['gateway']} code by {row['created_by']}",
                    now,
                )
                return Redeemed(row["id"], row["gateway"], row["created_by"])
            conn.execute(
                "INSERT INTO claim_failures (at, client, reason, gateway) VALUES (?,?,?,?)",
                (now, client, refusal.value, row["gateway"] if row is not None else None),
            )
            conn.execute("DELETE FROM claim_failures WHERE at < ?", (now - KEEP_FAILURES_S,))
            return refusal  # recorded: the refusal is raised once this is committed

        result = await self.db.write(redeem)
        if isinstance(result, Redeemed):
            log.info("claim code used gateway=%s client=%s", result.gateway, client)
            return result
        log.warning("claim code refused client=%s reason=%s", client, result.value)
        raise ClaimRefused(result, _MESSAGES[result])

    async def release(self, redeemed: Redeemed, why: str) -> None:
        """Make a used code usable again (the claim could not be completed, e.g. the broker
        could not be told); the code keeps its expiry."""
        now = self.db.clock()

        def release(conn: Conn) -> None:
            conn.execute(
                "UPDATE claim_codes SET used_at = NULL, used_from = NULL WHERE id = ?",
                (redeemed.id,),
            )
            self.audit.add(
                conn, "system", "claim.code_released", f"gateway={redeemed.gateway}: {why}", now
            )

        await self.db.write(release)

    # ---- reading ----------------------------------------------------------------------------

    async def pending(self) -> dict[str, PendingCode]:
        """The live code of each gateway that has one (gateway → code's facts)."""
        rows = await self.db.fetch_all(
            "SELECT gateway, created_by, created_at, expires_at FROM claim_codes"
            " WHERE used_at IS NULL AND voided_at IS NULL AND expires_at > ?",
            (self.db.clock(),),
        )
        return {
            r["gateway"]: PendingCode(
                gateway=r["gateway"],
                created_by=r["created_by"],
                created_at=from_epoch(r["created_at"]),
                expires_at=from_epoch(r["expires_at"]),
            )
            for r in rows
        }

    async def last_claimed(self) -> dict[str, datetime]:
        """When each gateway was last claimed."""
        rows = await self.db.fetch_all(
            "SELECT gateway, MAX(used_at) AS at FROM claim_codes WHERE used_at IS NOT NULL"
            " GROUP BY gateway"
        )
        return {r["gateway"]: from_epoch(r["at"]) for r in rows}

    async def failures(self, limit: int = 200) -> list[ClaimFailure]:
        rows = await self.db.fetch_all(
            "SELECT * FROM claim_failures ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            ClaimFailure(
                at=from_epoch(r["at"]),
                client=r["client"],
                reason=ClaimRefusal(r["reason"]),
                gateway=r["gateway"],
            )
            for r in rows
        ]


def _check_limit(conn: Conn, client: str, now: float) -> None:
    """Raise ClaimLimited if this address, or everyone, has guessed wrong too often."""
    since = now - WINDOW_S
    mine = conn.execute(
        "SELECT COUNT(*) AS n, MIN(at) AS first FROM claim_failures WHERE at > ? AND client = ?",
        (since, client),
    ).fetchone()
    everyone = conn.execute(
        "SELECT COUNT(*) AS n, MIN(at) AS first FROM"
        " (SELECT at FROM claim_failures WHERE at > ? AND reason != ?"
        " ORDER BY at DESC LIMIT ?) AS recent",
        # a malformed code guesses nothing: it counts against its address, not everyone's
        # (else a few addresses sending junk could keep every installer out)
        (since, ClaimRefusal.MALFORMED.value, GLOBAL_FAILURES),
    ).fetchone()
    if mine["n"] >= ADDRESS_FAILURES:
        wait = _retry_after(mine["first"], now)
        raise ClaimLimited(
            f"too many wrong claim codes from this address; try again in {wait} s", wait
        )
    if everyone["n"] >= GLOBAL_FAILURES:
        wait = _retry_after(everyone["first"], now)
        log.warning("claim codes: global guess limit reached failures=%s", everyone["n"])
        raise ClaimLimited(
            f"too many wrong claim codes were tried lately; try again in {wait} s", wait
        )


_MESSAGES = {
    ClaimRefusal.MALFORMED: (
        f"a claim code is {CLAIM_CODE_LENGTH} letters and digits, like 7KQM-3XWP"
    ),
    ClaimRefusal.UNKNOWN: "claim code not recognised — check it, or ask for a new one",
    ClaimRefusal.EXPIRED: "claim code expired — ask for a new one",
    ClaimRefusal.USED: "claim code already used — ask for a new one",
    ClaimRefusal.REPLACED: "claim code was replaced by a newer one — use the newest code",
}


def _refusal(row: Row | None, now: float) -> ClaimRefusal | None:
    if row is None:
        return ClaimRefusal.UNKNOWN
    if row["used_at"] is not None:
        return ClaimRefusal.USED
    if row["voided_at"] is not None:
        return ClaimRefusal.REPLACED
    if row["expires_at"] <= now:
        return ClaimRefusal.EXPIRED
    return None


def _retry_after(first: float | None, now: float) -> int:
    if first is None:
        return int(WINDOW_S)
    return max(1, int(first + WINDOW_S - now) + 1)
