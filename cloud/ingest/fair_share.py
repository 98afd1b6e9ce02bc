"""Fair shares of ingest's work: one gateway's junk never holds up another's alarm.

The broker delivers one queue to the cloud, in arrival order, and keeps only a window of
unacknowledged messages in flight; ingest acknowledges a message once it is stored. So a
gateway that floods the cloud with messages it has to refuse (junk, a wrong clock, a removed
device) would make every other gateway's alarm wait behind the flood. Here a gateway whose
messages are refused faster than `flood_per_s` is **flooding**: each batch takes at most
`share` of its messages, the rest wait in its own backlog and are **acknowledged to the
broker at once**, so the broker goes on delivering everybody else's. Its backlog is worked
through at most `flood_rate` messages a second (checking costs CPU that the others' alarms
need); what does not fit in `max_backlog` is dropped and counted. Its own order is kept, and
it stops counting as flooding once its refusals slow down. Gateways that are not flooding are
not touched: everything they send is acknowledged only after it is stored.

What that costs, stated: a message of a flooding gateway that was acknowledged early and is
lost in a crash of the cloud before it is handled is gone for a version-1 sender; a version-2
gateway sends it again (the cloud's own acknowledgement never came). The flood itself is the
`invalid_input` alarm on the board.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Gateway(Generic[T]):
    refused: deque[float] = field(default_factory=deque)  # times of recent refusals
    backlog: deque[T] = field(default_factory=deque)
    tokens: float = 0.0  # backlog messages it may have checked now
    filled_at: float = 0.0


class FairShare(Generic[T]):
    def __init__(
        self,
        gateway_of: Callable[[T], str],
        *,
        flood_per_s: int = 50,
        share: int = 10,
        max_backlog: int = 1_000,
        flood_rate: float = 100.0,
    ) -> None:
        self.gateway_of = gateway_of
        self.flood_per_s = flood_per_s
        self.share = share
        self.max_backlog = max_backlog
        self.flood_rate = flood_rate
        self._gateways: dict[str, _Gateway[T]] = {}
        self.counts: Counter[str] = Counter()

    def refused(self, gateway: str, at: float) -> None:
        """A message of the gateway was refused at `at`."""
        gw = self._gateways.setdefault(gateway, _Gateway())
        gw.refused.append(at)
        while len(gw.refused) > self.flood_per_s:
            gw.refused.popleft()

    def flooding(self, gateway: str, now: float) -> bool:
        gw = self._gateways.get(gateway)
        if gw is None or len(gw.refused) < self.flood_per_s:
            return False
        return now - gw.refused[0] < 1.0

    def _refill(self, gw: _Gateway[T], now: float) -> None:
        gw.tokens = min(float(self.flood_rate), gw.tokens + (now - gw.filled_at) * self.flood_rate)
        gw.filled_at = now

    def due(self, now: float) -> bool:
        """Whether some backlog may be checked now (else there is nothing to do but wait)."""
        for gw in self._gateways.values():
            if gw.backlog:
                self._refill(gw, now)
                if gw.tokens >= 1:
                    return True
        return False

    @property
    def backlog(self) -> int:
        return sum(len(gw.backlog) for gw in self._gateways.values())

    def schedule(self, arrived: Iterable[T], room: int, now: float) -> tuple[list[T], list[T]]:
        """Of what just `arrived` (in order) and the backlogs: the messages to handle now, in
        an order that keeps each gateway's own, and those of flooding gateways put aside
        (the caller acknowledges these to the broker at once)."""
        now_items: list[T] = []
        put_aside: list[T] = []
        taken: Counter[str] = Counter()
        # what waits already goes first, a share per gateway, as its rate allows
        for name, gw in list(self._gateways.items()):
            self._refill(gw, now)
            while (
                gw.backlog and taken[name] < self.share and len(now_items) < room and gw.tokens >= 1
            ):
                now_items.append(gw.backlog.popleft())
                gw.tokens -= 1
                taken[name] += 1
            if not gw.backlog and not gw.refused:
                del self._gateways[name]
        for item in arrived:
            name = self.gateway_of(item)
            known = self._gateways.get(name)
            if known is None or not self.flooding(name, now):
                if known is None or not known.backlog:
                    now_items.append(item)
                    continue
            elif not known.backlog and taken[name] < self.share:
                self._refill(gw, now)
                if gw.tokens >= 1:
                    gw.tokens -= 1
                    now_items.append(item)
                    taken[name] += 1
                    continue
            gw = self._gateways.setdefault(name, _Gateway())
            if len(gw.backlog) >= self.max_backlog:
                self.counts["dropped"] += 1
            else:
                gw.backlog.append(item)
                self.counts["put_aside"] += 1
            put_aside.append(item)
        return now_items, put_aside
