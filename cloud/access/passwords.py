"""Passwords kept as scrypt hashes, and the random keys and ids of sessions."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets

_N, _R, _P = 2**14, 8, 1
#: What `hash_password` makes: scrypt$N$r$p$salt$digest (16-byte salt, 32-byte digest, hex).
_HASH = re.compile(r"scrypt\$[0-9]{1,8}\$[0-9]{1,3}\$[0-9]{1,3}\$[0-9a-f]{32}\$[0-9a-f]{64}")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def is_hash(text: str) -> bool:
    """Whether `text` is a password hash as `hash_password` makes them (a bootstrap account
    may be given its hash instead of the password itself)."""
    return _HASH.fullmatch(text) is not None


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate.hex(), digest)


def new_session_key() -> str:
    """An account's session key: a new one ends every session made with the old."""
    return secrets.token_hex(16)


def new_session_id() -> str:
    """One session's own id, new at every sign-in."""
    return secrets.token_urlsafe(16)
