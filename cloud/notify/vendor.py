"""What the vendor channels share: the words of an alarm for a template, a phone number as
the vendors want it, what a transport failure means (not sent, or outcome unknown), and a
sliding rate window (a robot takes 20 messages a minute)."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from cloud.alarms.model import Mode
from cloud.notify.base import Delivery, Notification

#: Failures where the request never left this machine: sending again cannot duplicate it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True, slots=True)
class Words:
    """An alarm in the few words a template takes (Chinese)."""

    level: str  # Ⅰ级 …
    what: str  # 烟雾报警
    where: str  # 红星社区2栋301
    link: str  # the case in the web app ("" when no case_url is configured)
    lead: str  # 升级 / 提醒 / ""


_LEVELS = {1: "Ⅰ级", 2: "Ⅱ级", 3: "Ⅲ级", 4: "Ⅳ级"}


def words(n: Notification) -> Words:
    a = n.alarm
    lead = {"escalate": "升级", "remind": "提醒"}.get(n.reason, "")
    if a.mode is Mode.DRILL:
        lead = f"演练{lead}"
    return Words(
        level=_LEVELS.get(a.level, f"{a.level}级"),
        what=a.title_zh,
        where=f"{a.community}{a.building}{a.home}",
        link=n.link,
        lead=lead,
    )


def spoken(n: Notification) -> str:
    """What a voice call reads aloud (no link: nobody can click a phone call)."""
    w = words(n)
    lead = f"{w.lead}通知，" if w.lead else ""
    return f"{lead}{w.where}发生{w.what}，{w.level}告警，请立即处置。"


def mainland_number(phone: str) -> str:
    """`138 0000 0009` → `13800000009` (spaces and dashes out; a +86 prefix kept off)."""
    digits = re.sub(r"[ -]", "", phone)
    return digits[3:] if digits.startswith("+86") else digits.lstrip("+")


def e164(phone: str) -> str:
    """`138 0000 0009` → `+8613800000009` (Tencent wants E.164)."""
    digits = re.sub(r"[ -]", "", phone)
    return digits if digits.startswith("+") else f"+86{digits}"


def transport_failure(what: str, exc: httpx.HTTPError) -> Delivery:
    """No answer from the vendor. A failure to connect sent nothing (try again); a timeout or
    a cut connection after the request was written may have sent it (outcome unknown)."""
    name = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return Delivery(False, f"{what}: {name}, not sent: {exc}"[:300], retry=True)
    return Delivery(
        False,
        f"{what}: {name} after the request was sent; whether it arrived is unknown"[:300],
        retry=True,
        unknown=True,
    )


class RateWindow:
    """At most `limit` sends in any `per_s` seconds (a robot's 20 a minute): `wait()` is 0.0
    and counts the send when there is room, else how long until there is."""

    def __init__(self, limit: int, per_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.per_s = per_s
        self.clock = clock
        self._sent: deque[float] = deque()

    def wait(self) -> float:
        now = self.clock()
        while self._sent and self._sent[0] <= now - self.per_s:
            self._sent.popleft()
        if len(self._sent) >= self.limit:
            return self._sent[0] + self.per_s - now
        self._sent.append(now)
        return 0.0

    def local_limit(self, channel: str) -> Delivery | None:
        """None when there is room, else the refusal to record (tried again after the wait)."""
        wait = self.wait()
        if wait <= 0:
            return None
        return Delivery(
            False,
            f"{channel}: {self.limit} messages per {self.per_s:g} s reached; not sent,"
            f" next room in {wait:.1f} s",
            retry=True,
            retry_after_s=wait,
        )
