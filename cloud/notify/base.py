"""What every channel takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cloud.alarms.model import Alarm, Mode

#: Leads every text about a drill's alarm (应急演练), on every channel.
DRILL_MARK = "【演练 DRILL】"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one person (or the duty room) about one alarm, in one step."""

    key: str  # idempotency key: the same notification sent again carries the same key
    alarm: Alarm
    step: int
    reason: str  # notify, escalate or remind
    target: str  # duty_room, grid_worker, street_supervisor, emergency_contacts
    name: str
    phone: str | None
    #: the case in the web app (the configured `case_url` with the alarm's id), or ""
    link: str = ""
    #: attempts made before this one (0: the first)
    attempt: int = 0

    def text_zh(self) -> str:
        a = self.alarm
        where = f"{a.community}{a.building}{a.home}"
        lead = {"notify": "", "escalate": "【升级】", "remind": "【提醒】"}.get(self.reason, "")
        tail = "，尚未受理，请立即处置" if self.reason != "notify" else "，请及时处置"
        text = f"{lead}【{a.level_name}级】{a.title_zh}：{where}{tail}（告警号 {a.id}）"
        if a.mode is Mode.DRILL:  # never mistaken for a real alarm (docs/drills.md)
            text = f"{DRILL_MARK}{text}"
        return f"{text} {self.link}" if self.link else text

    def payload(self) -> dict[str, Any]:
        a = self.alarm
        return {
            "key": self.key,
            "reason": self.reason,
            "step": self.step,
            "to": {"target": self.target, "name": self.name, "phone": self.phone},
            "text_zh": self.text_zh(),
            "link": self.link,
            "alarm": {
                "id": a.id,
                "rule": a.rule,
                "level": a.level,
                "level_name": a.level_name,
                "kind": a.kind,
                "title_zh": a.title_zh,
                "title_en": a.title_en,
                "state": a.state.value,
                "mode": a.mode.value,
                "drill": a.window_id if a.mode is Mode.DRILL else None,
                "street_id": a.street_id,
                "community": a.community,
                "grid": a.grid,
                "building": a.building,
                "home": a.home,
                "gateway": a.gateway,
                "device": a.device,
                "received_at": a.received_at.isoformat(),
            },
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    detail: str = ""
    retry: bool = False  # a failure worth trying again (timeout, 5xx), not a refusal
    #: the request may have reached the vendor (a timeout or a cut connection after it was
    #: written): whether the person got it is unknown
    unknown: bool = False
    #: the vendor (or our own rate window) says when a try can succeed again
    retry_after_s: float | None = None
    #: the vendor's id of what was sent (BizId, CallId, SerialNo): call results name it
    ref: str = ""


class Channel(Protocol):
    name: str
    #: sending the same notification twice may reach the person twice (SMS, a voice call):
    #: after an attempt with an unknown outcome it is never sent again on this channel
    once_only: bool

    async def send(self, notification: Notification) -> Delivery: ...
