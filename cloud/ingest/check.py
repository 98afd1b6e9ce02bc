"""The first step of ingest: is a message off the broker what the contract says, from a
gateway and devices the site knows, at a plausible time?

`Checker.check` returns the decoded message or None; a refused message is noted with its
reason in the `RejectLog` (written with the next commit), counted per gateway for the
`invalid_input` rule and for fair shares, and — a version-2 event — remembered so that its
stream is acknowledged once the refusal is kept (the gateway moves on; the refusal is the
record of it).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cloud.ingest.delivery import StreamKey
from cloud.ingest.rejects import Reason, RejectLog
from cloud.site.registry import Registry
from contract import topics
from contract.models import (
    MAX_EVENT_BYTES,
    MAX_REPLY_BYTES,
    MAX_STATUS_BYTES,
    MAX_TELEMETRY_BYTES,
    Event,
    Kind,
    Reply,
    Status,
    Telemetry,
    decode,
)
from contract.topics import Channel, TopicError

log = logging.getLogger(__name__)

Message = Event | Telemetry | Status | Reply
#: A message that passed the checks: (topic, payload, received_at, message).
Checked = tuple[str, bytes, float, Message]

_LIMITS = {
    Channel.EVENT: MAX_EVENT_BYTES,
    Channel.TELEMETRY: MAX_TELEMETRY_BYTES,
    Channel.STATUS: MAX_STATUS_BYTES,
    Channel.REPLY: MAX_REPLY_BYTES,
}
_MODELS: dict[Channel, type[Event] | type[Telemetry] | type[Status] | type[Reply]] = {
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.STATUS: Status,
    Channel.REPLY: Reply,
}
_BOOT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Checker:
    def __init__(
        self,
        registry: Registry,
        rejects: RejectLog,
        *,
        max_clock_ahead_s: float = 600.0,
        max_event_age_s: float = 30 * 86400.0,
        on_refused: Callable[[str, float], None] = lambda gateway, at: None,
    ) -> None:
        self.registry = registry
        self.rejects = rejects
        self.max_clock_ahead_s = max_clock_ahead_s
        self.max_event_age_s = max_event_age_s
        #: told of every refusal of a known sender (fair shares count them)
        self.on_refused = on_refused
        self.counts: Counter[str] = Counter()
        #: refused version-2 events, to acknowledge once their refusal is kept
        self.refused_streams: list[tuple[StreamKey, int]] = []
        #: refusals per gateway since the last `take_refusals` (the `invalid_input` rule)
        self._refused_by_gateway: Counter[str] = Counter()

    def check_many(self, batch: Sequence[tuple[str, bytes, float]]) -> list[Checked]:
        """What passed the checks, in order; what did not is refused with its reason (written
        with the next commit). Touches no store, so one batch can be checked while the one
        before commits. Never raises."""
        self.counts["messages"] += len(batch)
        checked: list[Checked] = []
        for topic, payload, received_at in batch:
            try:
                message = self.check(topic, payload, received_at)
            except Exception as exc:  # never let one message stop ingest
                self.internal_error(topic, payload, exc, received_at)
                continue
            if message is not None:
                checked.append((topic, payload, received_at, message))
        return checked

    def internal_error(
        self, topic: str, payload: bytes, exc: BaseException, received_at: float
    ) -> None:
        """A bug of ours on this message: logged, and kept as an `internal_error` rejection
        (not as a refusal of the sender: the gateway may send it again)."""
        log.error("internal error handling %s", topic, exc_info=exc)
        try:
            detail = f"{type(exc).__name__}: {exc}"
            self.reject(
                topic, payload, Reason.INTERNAL_ERROR, detail, received_at, acknowledge=False
            )
        except Exception:
            log.exception("could not record the internal error of %s", topic)

    def check(self, topic: str, payload: bytes, received_at: float) -> Message | None:
        """The message, or None if it is not ingest's business or was refused (noted)."""
        try:
            parsed = topics.parse(topic)
        except TopicError as exc:
            self.reject(topic, payload, Reason.BAD_TOPIC, str(exc), received_at)
            return None
        model = _MODELS.get(parsed.channel)
        if model is None:
            return None  # our own commands: not ingest's business
        gateway = parsed.gateway

        def refuse(reason: Reason, detail: str, *, known: bool = True) -> None:
            self.reject(
                topic, payload, reason, detail, received_at, gateway=gateway if known else None
            )

        limit = _LIMITS[parsed.channel]
        if len(payload) > limit:
            refuse(
                Reason.OVERSIZE, f"{len(payload)} bytes, the limit for {parsed.channel} is {limit}"
            )
            return None
        try:
            # strict: JSON types must be the contract's ("5" is not a number, 1763784900 not a
            # time), no key twice, times in range
            message = decode(model, payload)
        except ValidationError as exc:
            malformed = any(err["type"] == "json_invalid" for err in exc.errors())
            refuse(Reason.MALFORMED_JSON if malformed else Reason.INVALID, describe(exc))
            return None
        if message.gateway != gateway:
            refuse(
                Reason.GATEWAY_MISMATCH,
                f"payload says gateway {message.gateway!r}, topic says {gateway!r}",
            )
            return None
        if not self.registry.has_gateway(gateway):
            refuse(Reason.UNKNOWN_GATEWAY, f"gateway {gateway!r} is not registered", known=False)
            return None
        if isinstance(message, Event):
            if self._unknown_devices(gateway, {message.device}) or (
                message.kind is not Kind.GATEWAY and message.device == gateway
            ):
                refuse(
                    Reason.UNKNOWN_DEVICE,
                    f"device {message.device!r} is not registered on gateway {gateway!r}",
                )
                return None
            why = self._implausible(message.ts.timestamp(), received_at)
            if why is None:
                return message
            if message.clock_synced:  # a synchronised clock far off: refused
                refuse(Reason.IMPLAUSIBLE_TIME, why)
                return None
            # an unsynchronised one (a Pi without RTC before NTP): dated by its arrival
            self.counts["dated_on_arrival"] += 1
            return message.model_copy(update={"ts": datetime.fromtimestamp(received_at, UTC)})
        if isinstance(message, Telemetry):
            unknown = self._unknown_devices(gateway, {r.device for r in message.readings})
            if unknown:
                refuse(
                    Reason.UNKNOWN_DEVICE,
                    f"devices {unknown} are not registered on gateway {gateway!r}",
                )
                return None
            for reading in message.readings:
                why = self._implausible(reading.ts.timestamp(), received_at)
                if why is not None:
                    refuse(Reason.IMPLAUSIBLE_TIME, f"reading of {reading.device!r}: {why}")
                    return None
        return message

    def reject(
        self,
        topic: str,
        payload: bytes,
        reason: Reason,
        detail: str,
        received_at: float,
        *,
        gateway: str | None = None,
        acknowledge: bool = True,
    ) -> None:
        """Count and keep a refused message (written with the next commit). With `gateway`
        (a sender we know), it counts towards that gateway's refusals; a refused version-2
        event of it is acknowledged once its refusal is kept, unless `acknowledge` is false
        (our own error: the gateway may send it again)."""
        rejection = self.rejects.note(topic, gateway, payload, reason, detail, received_at)
        if gateway is None:
            return
        self._refused_by_gateway[rejection.gateway] += 1
        self.on_refused(rejection.gateway, received_at)
        if acknowledge and topic.endswith("/event"):
            stream = stream_of(payload)
            if stream is not None:
                self.refused_streams.append(((gateway, stream[0]), stream[1]))

    def take_refusals(self) -> Counter[str]:
        """Refusals per gateway since the last call."""
        refused, self._refused_by_gateway = self._refused_by_gateway, Counter()
        return refused

    def _implausible(self, ts: float, received_at: float) -> str | None:
        if ts > received_at + self.max_clock_ahead_s:
            return f"time is {ts - received_at:.0f} s ahead of the cloud's clock"
        if ts < received_at - self.max_event_age_s:
            return f"time is {(received_at - ts) / 86400:.1f} days old"
        return None

    def _unknown_devices(self, gateway: str, devices: set[str]) -> list[str]:
        return sorted(
            d for d in devices if d != gateway and self.registry.device(gateway, d) is None
        )


def describe(exc: ValidationError) -> str:
    """What is wrong with a message, readably (at most five problems named)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def stream_of(payload: bytes) -> tuple[str, int] | None:
    """(boot, seq) of a refused event that asked for the cloud's acknowledgement (version 2),
    if they can be read at all."""
    try:
        data: Any = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("v") != 2:
        return None
    boot, seq = data.get("boot"), data.get("seq")
    if not isinstance(boot, str) or not _BOOT.match(boot):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= 2**53:
        return None
    return boot, seq
