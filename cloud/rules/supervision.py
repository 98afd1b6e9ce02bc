"""Supervision in the cloud: a gateway that goes offline (its retained status, its last will)
or falls silent is one `gateway_offline` alarm; a device that reports periodically and stops
is a `device_silent` alarm — a dead detector is a danger, not a quiet night.

Pure and synchronous like the rule engine: the caller says what was heard and when (the
cloud's clock) and calls `tick(now)` every second or so. Gateways supervise their own devices
too (a `fault`, then a `restore`); this watch is the cloud's second line, and the only one for
third-party gateways that publish the contract without our agent.

Muting the silence of devices under an offline gateway is the core's inhibition
(`cloud/rules/core.py`); when a gateway comes back, its devices get a fresh grace period, so
the replay from its outbox arrives before anything is called silent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cloud.rules.decisions import AlarmDraft, Clear, Decision, Key
from cloud.rules.supervision_rules import (
    DEVICE_SILENT,
    EVENTS_MISSING,
    GATEWAY_OFFLINE,
    INVALID_INPUT,
    Supervision,
)
from cloud.times import from_epoch

SUPERVISION_GROUP = "supervision"


@dataclass(slots=True)
class _Device:
    model: str
    kind: str | None
    last_heard: float
    firing: bool = False


@dataclass(slots=True)
class _Gateway:
    last_heard: float
    offline: bool = False  # its last status said offline
    firing: bool = False
    refused: deque[float] = field(default_factory=deque)  # when its messages were refused
    refused_alarm_at: float = float("-inf")


class Watchdog:
    def __init__(
        self,
        config: Supervision,
        devices: Mapping[tuple[str, str], str],
        gateways: Iterable[str],
        now: float,
    ) -> None:
        """`devices`: (gateway, device) → model, for every registered device."""
        self.config = config
        self._devices = {key: _Device(model, None, now) for key, model in devices.items()}
        self._gateways = {gw: _Gateway(now) for gw in gateways}
        self._by_gateway: dict[str, list[tuple[str, str]]] = {}
        for key in self._devices:
            self._by_gateway.setdefault(key[0], []).append(key)

    def reconfigure(self, config: Supervision) -> None:
        self.config = config

    def update(
        self, devices: Mapping[tuple[str, str], str], gateways: Iterable[str], now: float
    ) -> list[Decision]:
        """The registry changed: watch these devices and gateways from now on. Unchanged ones
        keep their state (when last heard, whether firing); new ones start a grace period
        at `now`; for removed ones that were firing, a Clear (nobody is left to clear it)."""
        out: list[Decision] = []
        at, why = from_epoch(now), "removed from the registry"
        kept_devices: dict[tuple[str, str], _Device] = {}
        for key, model in devices.items():
            dev = self._devices.get(key)
            if dev is None:
                dev = _Device(model, None, now)
            dev.model = model
            kept_devices[key] = dev
        for key, dev in self._devices.items():
            if key not in kept_devices and dev.firing:
                out.append(Clear(DEVICE_SILENT, key[0], key[1], at, why))
        kept_gateways = {gw: self._gateways.get(gw) or _Gateway(now) for gw in gateways}
        for gateway, gw in self._gateways.items():
            if gateway not in kept_gateways and gw.firing:
                out.append(Clear(GATEWAY_OFFLINE, gateway, gateway, at, why))
        by_gateway: dict[str, list[tuple[str, str]]] = {}
        for key in kept_devices:
            by_gateway.setdefault(key[0], []).append(key)
        self._devices, self._gateways, self._by_gateway = kept_devices, kept_gateways, by_gateway
        return out

    def forget(self, gateways: set[str]) -> None:
        """Another worker supervises these gateways now: no Clear for what was firing (the
        alarms stay open, and the other worker restores them)."""
        self._devices = {k: d for k, d in self._devices.items() if k[0] not in gateways}
        self._gateways = {g: s for g, s in self._gateways.items() if g not in gateways}
        for gateway in gateways:
            self._by_gateway.pop(gateway, None)

    def _silent_after(self, device: _Device) -> float | None:
        cfg = self.config.device_silent
        if device.model in cfg.models:
            return cfg.models[device.model]
        if device.kind is not None:
            for kind, after in cfg.after_s.items():
                if kind.value == device.kind:
                    return after
        return None

    # ---- what was heard -------------------------------------------------------------------

    def heard(
        self, gateway: str, device: str | None, now: float, kind: str | None = None
    ) -> list[Decision]:
        """A message from the gateway (about `device`, if any) arrived at `now`."""
        out: list[Decision] = []
        gw = self._gateways.get(gateway)
        if gw is None:
            return out
        gw.last_heard = max(gw.last_heard, now)
        self._gateway_check(gateway, gw, now, out)
        if device is not None and device != gateway:
            dev = self._devices.get((gateway, device))
            if dev is not None:
                if kind is not None:
                    dev.kind = kind
                dev.last_heard = max(dev.last_heard, now)
                if dev.firing:
                    dev.firing = False
                    out.append(
                        Clear(DEVICE_SILENT, gateway, device, from_epoch(now), "heard again")
                    )
        return out

    def status(self, gateway: str, online: bool, now: float) -> list[Decision]:
        """The gateway's retained status: `online` (birth) or `offline` (last will)."""
        out: list[Decision] = []
        gw = self._gateways.get(gateway)
        if gw is None:
            return out
        was_down = gw.firing
        gw.offline = not online
        if online:
            gw.last_heard = max(gw.last_heard, now)
        self._gateway_check(gateway, gw, now, out)
        if was_down and not gw.firing:
            # back: its devices get a fresh grace period for the outbox replay
            for key in self._by_gateway.get(gateway, []):
                dev = self._devices[key]
                dev.last_heard = max(dev.last_heard, now)
        return out

    def _gateway_down(self, gw: _Gateway, now: float) -> str | None:
        if gw.offline:
            return "status offline (last will)"
        silent = self.config.gateway_offline.silent_after_s
        if silent and now - gw.last_heard > silent:
            return f"nothing heard for {now - gw.last_heard:.0f} s"
        return None

    def _gateway_check(self, gateway: str, gw: _Gateway, now: float, out: list[Decision]) -> None:
        down = self._gateway_down(gw, now)
        if down and not gw.firing:
            gw.firing = True
            cfg = self.config.gateway_offline
            out.append(
                AlarmDraft(
                    rule=GATEWAY_OFFLINE,
                    level=cfg.level,
                    kind="gateway",
                    gateway=gateway,
                    device=gateway,
                    title_zh=cfg.zh,
                    title_en=cfg.en,
                    device_ts=from_epoch(gw.last_heard if not gw.offline else now),
                    group=SUPERVISION_GROUP,
                )
            )
        elif not down and gw.firing:
            gw.firing = False
            out.append(Clear(GATEWAY_OFFLINE, gateway, gateway, from_epoch(now), "online again"))

    def events_missing(
        self, gateway: str, boot: str, first: int, last: int, since: float, now: float
    ) -> list[Decision]:
        """Events `first`…`last` of `boot` never came, though the gateway was asked again."""
        if gateway not in self._gateways:
            return []
        cfg = self.config.events_missing
        span = f"{first}" if first == last else f"{first}–{last}"
        return [
            AlarmDraft(
                rule=EVENTS_MISSING,
                level=cfg.level,
                kind="gateway",
                gateway=gateway,
                device=gateway,
                title_zh=f"{cfg.zh}：启动 {boot} 序号 {span}（{last - first + 1} 条）",
                title_en=f"{cfg.en}: boot {boot} seq {span} ({last - first + 1})",
                device_ts=from_epoch(since),
                value=float(last - first + 1),
                group=SUPERVISION_GROUP,
            )
        ]

    def refused(self, gateway: str, count: int, now: float) -> list[Decision]:
        """`count` messages of the gateway were refused at `now`: past `at_least` within
        `within_s`, one `invalid_input` alarm (repeated at most every `within_s`)."""
        gw = self._gateways.get(gateway)
        if gw is None or count <= 0:
            return []
        cfg = self.config.invalid_input
        times = gw.refused
        times.extend([now] * min(count, cfg.at_least))
        while len(times) > cfg.at_least:
            times.popleft()
        while times and times[0] < now - cfg.within_s:
            times.popleft()
        if len(times) < cfg.at_least or now - gw.refused_alarm_at < cfg.within_s:
            return []
        gw.refused_alarm_at = now
        return [
            AlarmDraft(
                rule=INVALID_INPUT,
                level=cfg.level,
                kind="gateway",
                gateway=gateway,
                device=gateway,
                title_zh=cfg.zh,
                title_en=cfg.en,
                device_ts=from_epoch(now),
                value=float(len(times)),
                group=SUPERVISION_GROUP,
            )
        ]

    def blind(self, now: float) -> None:
        """The cloud hears nothing at all now (its broker is unreachable): that says nothing
        of the gateways. Everything counts as heard, so nothing is called silent during the
        outage, and each gateway and device gets a fresh grace period after it."""
        for gw in self._gateways.values():
            gw.last_heard = max(gw.last_heard, now)
        for dev in self._devices.values():
            dev.last_heard = max(dev.last_heard, now)

    # ---- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        for gateway, gw in self._gateways.items():
            self._gateway_check(gateway, gw, now, out)
        cfg = self.config.device_silent
        for (gateway, device), dev in self._devices.items():
            if dev.firing:
                continue
            after = self._silent_after(dev)
            if after is None or now - dev.last_heard <= after:
                continue
            dev.firing = True
            out.append(
                AlarmDraft(
                    rule=DEVICE_SILENT,
                    level=cfg.level,
                    kind=dev.kind or "gateway",
                    gateway=gateway,
                    device=device,
                    title_zh=cfg.zh,
                    title_en=cfg.en,
                    device_ts=from_epoch(dev.last_heard),
                    value=round(now - dev.last_heard, 1),
                    group=SUPERVISION_GROUP,
                )
            )
        return out

    # ---- state ----------------------------------------------------------------------------

    def restore(self, keys: Iterable[Key]) -> None:
        """After a restart: these supervision alarms are open."""
        for gateway, device, rule in keys:
            if rule == GATEWAY_OFFLINE and gateway in self._gateways:
                # still offline until its (retained) status says otherwise
                self._gateways[gateway].firing = True
                self._gateways[gateway].offline = True
            elif rule == DEVICE_SILENT and (gateway, device) in self._devices:
                self._devices[(gateway, device)].firing = True

    def unfire(self, key: Key) -> None:
        """A draft of ours was muted (inhibited): as if it had not fired, so it can fire
        later if the condition still holds once the inhibition is over."""
        gateway, device, rule = key
        if rule == DEVICE_SILENT and (gateway, device) in self._devices:
            self._devices[(gateway, device)].firing = False
        elif rule == GATEWAY_OFFLINE and gateway in self._gateways:
            self._gateways[gateway].firing = False

    def firing(self, key: Key) -> bool:
        gateway, device, rule = key
        if rule == GATEWAY_OFFLINE:
            gw = self._gateways.get(gateway)
            return bool(gw and gw.firing)
        if rule == DEVICE_SILENT:
            dev = self._devices.get((gateway, device))
            return bool(dev and dev.firing)
        return False

    def firing_on(self, gateway: str, rule: str) -> Key | None:
        """The key of a firing supervision alarm of this rule on this gateway, if any."""
        if rule == GATEWAY_OFFLINE:
            gw = self._gateways.get(gateway)
            return (gateway, gateway, rule) if gw and gw.firing else None
        if rule == DEVICE_SILENT:
            for key in self._by_gateway.get(gateway, []):
                if self._devices[key].firing:
                    return (*key, rule)
        return None
