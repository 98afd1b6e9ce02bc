"""The one root of every error the cloud raises on purpose, and its kinds. The web app maps
each kind to its HTTP status once (cloud/web/errors.py); a message names what and why."""

from __future__ import annotations

from typing import Self


class CloudError(Exception):
    """Something the cloud refuses or cannot find, with a reason for the person who asked.

    A reason a duty-room page shows is made with `said(zh, en)`: the message holds both, and
    the web app's answer gives each (`zh`, `en`) so the page shows the user's language."""

    zh: str | None = None
    en: str | None = None

    @classmethod
    def said(cls, zh: str, en: str) -> Self:
        exc = cls(f"{zh} / {en}")
        exc.zh, exc.en = zh, en
        return exc


class NotFound(CloudError):
    """No such thing (HTTP 404)."""


class Conflict(CloudError):
    """Its current state does not allow it (HTTP 409)."""


class Refused(CloudError):
    """The request itself is wrong: the reason says how (HTTP 422)."""


class TooLarge(CloudError):
    """More is asked for than one answer holds (HTTP 413): the reason says how much."""


class Unavailable(CloudError):
    """A part the cloud needs cannot answer now; trying again later may work (HTTP 503)."""


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (its server restarting, a network cut): nothing was
    written by the unit that met it; the next unit connects again."""
