"""End-to-end delivery of version-2 events: which `seq` of each `(gateway, boot)` the cloud
has committed, the acknowledgement that lets the gateway forget them, and gaps.

A broker's acknowledgement says only that the broker holds a message, perhaps only in
memory; a gateway that speaks message version 2 keeps every event until the cloud's `Ack`
(`sc/v1/{gw}/cmd/ack`) says it is committed: stored with what the rules decided, or refused
and kept with the reason. The `Ack` is a watermark: every `seq` of the boot up to `upto`.

Order is kept per boot: an event that arrives after a gap (its `seq` is not the next one) is
held back, not evaluated, and the gateway is asked to send again what follows the
watermark (`replay`). When the missing events arrive, all go on in `seq` order. Held events
wait at most `hold_s` — an alarm is never kept from the duty room for longer than that;
after it they go on out of order and the gap stays open for the late ones. A gap still open
after `gap_fault_s` becomes a supervision fault naming the gateway and the missing range,
and the watermark moves past it so the gateway is not stuck resending.

A new `boot` is a new stream (a restart, not a gap); its first event is `seq` 1.

Pure and synchronous: ingest feeds it, stores what it lets through, reports what was
committed (`committed`) and sends the acknowledgements it gives. Only `upto` is kept in the
database (`event_streams`, written in the same transaction as the events); what a restarted
cloud held in memory is sent again by the gateways, which never forgot it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
StreamKey = tuple[str, str]  # (gateway, boot)


@dataclass(frozen=True, slots=True)
class AckDue:
    """An acknowledgement to send to a gateway."""

    gateway: str
    boot: str
    upto: int
    replay: bool


@dataclass(frozen=True, slots=True)
class Gap:
    """Events of a boot that never arrived, given up on after `gap_fault_s`."""

    gateway: str
    boot: str
    first: int
    last: int
    since: float


@dataclass(slots=True)
class _Stream(Generic[T]):
    upto: int  # every seq ≤ upto is committed
    above: set[int] = field(default_factory=set)  # committed after a gap
    admitted: int = 0  # seqs ≤ admitted are committed or on their way to be
    held: dict[int, tuple[float, T]] = field(default_factory=dict)  # seq → (since, item)
    gap_since: float | None = None
    replay_asked: float = float("-inf")
    dirty: bool = False  # `upto` changed since it was last written

    def next_gap(self) -> tuple[int, int] | None:
        """The first missing range (after `upto`), if anything is known beyond it."""
        beyond = [s for s in (*self.above, *self.held) if s > self.upto + 1]
        if not beyond:
            return None
        return self.upto + 1, min(beyond) - 1


class Delivery(Generic[T]):
    def __init__(
        self,
        *,
        hold_s: float = 2.0,
        gap_fault_s: float = 30.0,
        replay_every_s: float = 1.0,
        max_held: int = 10_000,
        clock: Callable[[], float],
    ) -> None:
        self.hold_s = hold_s
        self.gap_fault_s = gap_fault_s
        self.replay_every_s = replay_every_s
        self.max_held = max_held
        self.clock = clock
        self._streams: dict[StreamKey, _Stream[T]] = {}
        self.counts: dict[str, int] = {"held": 0, "released_late": 0, "gaps": 0, "lost": 0}

    # ---- state from the database ----------------------------------------------------------

    def unknown(self, keys: Iterable[StreamKey]) -> set[StreamKey]:
        """The streams not in memory (ingest loads them before it admits their events)."""
        return {key for key in keys if key not in self._streams}

    def load(self, key: StreamKey, upto: int, committed_above: Iterable[int]) -> None:
        """A stream as the database knows it: its watermark and the seqs stored past it."""
        stream: _Stream[T] = _Stream(upto=upto, above={s for s in committed_above if s > upto})
        self._advance(stream)
        stream.admitted = stream.upto
        self._streams[key] = stream

    def forget(self, gateways: set[str]) -> None:
        """Another worker handles these gateways now: it loads their streams from the
        database. Events held back here go too; their gateways keep them until acknowledged
        and send them again when the new worker asks."""
        for key in [k for k in self._streams if k[0] in gateways]:
            del self._streams[key]

    # ---- arrivals ---------------------------------------------------------------------------

    def admit(self, key: StreamKey, seq: int, item: T) -> list[T]:
        """An event has arrived: the items to evaluate now, in order (this one, then any held
        ones it lets through), or nothing if it must wait for a gap before it."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(upto=0)
        if seq <= stream.admitted or seq in stream.above:
            return [item]  # a duplicate: the store drops it; it is acknowledged again
        if seq != stream.admitted + 1:
            if seq not in stream.held:
                stream.held[seq] = (self.clock(), item)
                self.counts["held"] += 1
                if stream.gap_since is None:
                    stream.gap_since = self.clock()
            if len(stream.held) > self.max_held:
                return self._release_all(stream)
            return []
        stream.admitted = seq
        out = [item]
        while stream.admitted + 1 in stream.held:
            stream.admitted += 1
            out.append(stream.held.pop(stream.admitted)[1])
        return out

    def committed(self, key: StreamKey, seqs: Iterable[int]) -> None:
        """These seqs are stored (or refused and kept), in the database, committed."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(upto=0)
        for seq in seqs:
            if seq > stream.upto:
                stream.above.add(seq)
        before = stream.upto
        self._advance(stream)
        stream.admitted = max(stream.admitted, stream.upto)
        if stream.upto != before:
            stream.dirty = True
        if stream.next_gap() is None:
            stream.gap_since = None

    def _advance(self, stream: _Stream[T]) -> None:
        while stream.upto + 1 in stream.above:
            stream.upto += 1
            stream.above.discard(stream.upto)

    # ---- what to send and write -------------------------------------------------------------

    def ack(self, key: StreamKey) -> AckDue:
        """The acknowledgement for a stream now (ask for a replay at most every
        `replay_every_s` while a gap is open)."""
        stream = self._streams[key]
        replay = False
        if stream.next_gap() is not None:
            now = self.clock()
            if now - stream.replay_asked >= self.replay_every_s:
                stream.replay_asked = now
                replay = True
        return AckDue(key[0], key[1], stream.upto, replay)

    def watermarks(self) -> list[tuple[str, str, int]]:
        """(gateway, boot, upto) of every stream whose watermark moved since the last call:
        written with the commit that moved it."""
        out = []
        for (gateway, boot), stream in self._streams.items():
            if stream.dirty:
                stream.dirty = False
                out.append((gateway, boot, stream.upto))
        return out

    def remark(self, marks: list[tuple[str, str, int]]) -> None:
        """Watermarks taken for a commit that failed: written with the next one."""
        for gateway, boot, _ in marks:
            stream = self._streams.get((gateway, boot))
            if stream is not None:
                stream.dirty = True

    def upto(self, key: StreamKey) -> int | None:
        stream = self._streams.get(key)
        return None if stream is None else stream.upto

    # ---- time ---------------------------------------------------------------------------------

    def expire(self) -> tuple[list[T], list[Gap], list[AckDue]]:
        """Held items past `hold_s` (to evaluate now, out of order), gaps open past
        `gap_fault_s` (given up: the watermark moves past them), and the replay requests
        still due for the open gaps."""
        now = self.clock()
        released: list[T] = []
        gaps: list[Gap] = []
        asks: list[AckDue] = []
        for key, stream in self._streams.items():
            if stream.held and min(at for at, _ in stream.held.values()) + self.hold_s <= now:
                released += self._release_all(stream)
            gap = stream.next_gap()
            if gap is None:
                continue
            since = stream.gap_since if stream.gap_since is not None else now
            if now - since >= self.gap_fault_s:
                first, last = gap
                gaps.append(Gap(key[0], key[1], first, last, since))
                self.counts["gaps"] += 1
                self.counts["lost"] += last - first + 1
                stream.upto = last
                stream.admitted = max(stream.admitted, last)
                self._advance(stream)
                stream.dirty = True
                released += self._release_ready(stream)
                stream.gap_since = now if stream.next_gap() is not None else None
                asks.append(self.ack(key))
            elif now - stream.replay_asked >= self.replay_every_s:
                asks.append(self.ack(key))
        return released, gaps, asks

    def _release_ready(self, stream: _Stream[T]) -> list[T]:
        out = []
        while stream.admitted + 1 in stream.held:
            stream.admitted += 1
            out.append(stream.held.pop(stream.admitted)[1])
        return out

    def _release_all(self, stream: _Stream[T]) -> list[T]:
        """Let every held item go, in seq order; the gap before them stays open."""
        out = [stream.held[seq][1] for seq in sorted(stream.held)]
        self.counts["released_late"] += len(out)
        stream.admitted = max(stream.admitted, max(stream.held))
        stream.held.clear()
        return out
