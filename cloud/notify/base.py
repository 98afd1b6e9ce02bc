"""What every channel takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cloud.alarms.model import Alarm


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

    def text_zh(self) -> str:
        a = self.alarm
        where = f"{a.community}{a.building}{a.home}"
        lead = {"notify": "", "escalate": "【升级】", "remind": "【提醒】"}.get(self.reason, "")
        tail = "，尚未受理，请立即处置" if self.reason != "notify" else "，请及时处置"
        return f"{lead}【{a.level_name}级】{a.title_zh}：{where}{tail}（告警号 {a.id}）"

    def payload(self) -> dict[str, Any]:
        a = self.alarm
        return {
            "key": self.key,
            "reason": self.reason,
            "step": self.step,
            "to": {"target": self.target, "name": self.name, "phone": self.phone},
            "text_zh": self.text_zh(),
            "alarm": {
                "id": a.id,
                "rule": a.rule,
                "level": a.level,
                "level_name": a.level_name,
                "kind": a.kind,
                "title_zh": a.title_zh,
                "title_en": a.title_en,
                "state": a.state.value,
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


class Channel(Protocol):
    name: str

    async def send(self, notification: Notification) -> Delivery: ...
